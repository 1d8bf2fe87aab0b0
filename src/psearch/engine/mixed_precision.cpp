#include "psearch/engine/mixed_precision.h"
#include "psearch/engine/step_checks.h"

#include <ATen/TensorOperators.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/zeros.h>

#include <stdexcept>

namespace psearch::engine {

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names{"fp32", "bf16", "fp16"};
  return names;
}

at::ScalarType precision_dtype(const std::string& precision) {
  if (precision == "fp32") return at::kFloat;
  if (precision == "bf16") return at::kBFloat16;
  if (precision == "fp16") return at::kHalf;
  throw std::runtime_error("unknown precision '" + precision + "' (expected fp32, bf16 or fp16)");
}

AutocastScope::AutocastScope(c10::Device device, at::ScalarType dtype) : device_type_(device.type()) {
  if (dtype == at::kFloat) return;
  active_ = true;
  previous_enabled_ = at::autocast::is_autocast_enabled(device_type_);
  previous_dtype_ = at::autocast::get_autocast_dtype(device_type_);
  at::autocast::set_autocast_enabled(device_type_, true);
  at::autocast::set_autocast_dtype(device_type_, dtype);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_type_, previous_enabled_);
  at::autocast::set_autocast_dtype(device_type_, previous_dtype_);
}

LossScaler::LossScaler(c10::Device device, double initial_scale, double growth_factor, double backoff_factor,
                       int64_t growth_interval)
    : scale_(at::full({1}, initial_scale, at::TensorOptions().dtype(at::kFloat).device(device))),
      growth_tracker_(at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(device))),
      growth_factor_(growth_factor),
      backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

at::Tensor LossScaler::scale(const at::Tensor& loss) const { return loss * scale_.to(loss.scalar_type()); }

bool LossScaler::unscale_and_update(const std::vector<at::Tensor>& parameters) {
  at::Tensor found_inf = at::zeros({1}, scale_.options());
  const at::Tensor inv_scale = scale_.reciprocal();
  for (auto& grads : gradients_by_device_and_dtype(parameters)) {
    const c10::Device device = grads.front().device();
    at::Tensor group_inf = at::zeros({1}, scale_.options().device(device));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, group_inf, inv_scale.to(device));
    found_inf += group_inf.to(found_inf.device());
  }
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf, growth_factor_, backoff_factor_, growth_interval_);
  return found_inf.item<float>() > 0;
}

double LossScaler::current_scale() const { return scale_.item<double>(); }

at::Tensor LossScaler::state() const {
  return at::cat({scale_.to(at::kCPU, at::kDouble), growth_tracker_.to(at::kCPU, at::kDouble)});
}

void LossScaler::restore(const at::Tensor& state) {
  if (!state.defined() || state.numel() != 2) throw std::runtime_error("a loss-scaler state holds 2 values");
  const at::Tensor values = state.to(at::kCPU, at::kDouble);
  scale_.fill_(values[0].item<double>());
  growth_tracker_.fill_(values[1].item<int64_t>());
}

}  // namespace psearch::engine
