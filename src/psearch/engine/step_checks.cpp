#include "psearch/engine/step_checks.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <map>
#include <sstream>
#include <stdexcept>

namespace psearch::engine {

std::vector<std::vector<at::Tensor>> gradients_by_device_and_dtype(const std::vector<at::Tensor>& parameters) {
  std::map<std::pair<std::string, at::ScalarType>, std::vector<at::Tensor>> groups;
  for (const at::Tensor& p : parameters) {
    const at::Tensor& g = p.grad();
    if (g.defined()) groups[{g.device().str(), g.scalar_type()}].push_back(g);
  }
  std::vector<std::vector<at::Tensor>> out;
  for (auto& [key, grads] : groups) out.push_back(std::move(grads));
  return out;
}

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  std::vector<std::vector<at::Tensor>> groups = gradients_by_device_and_dtype(parameters);
  if (groups.empty()) return at::zeros({});
  const c10::Device device = groups.front().front().device();
  std::vector<at::Tensor> norms;
  for (const auto& grads : groups)
    for (const at::Tensor& n : at::_foreach_norm(grads, 2)) norms.push_back(n.to(device, at::kFloat));
  const at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
  if (max_norm == std::numeric_limits<double>::infinity()) return total;
  // Multiplying by a clamped coefficient (1 when within the bound) instead of branching on
  // total > max_norm keeps the decision on the device.
  const at::Tensor coefficient = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& grads : groups)
    at::_foreach_mul_(grads, coefficient.to(grads.front().device(), grads.front().scalar_type()));
  return total;
}

void DivergenceWatch::observe(const at::Tensor& value, size_t what, int64_t iteration) {
  const at::TensorOptions options = value.options().dtype(at::kDouble);
  if (!first_.defined()) first_ = at::full({3}, -1.0, options);
  const at::Tensor v = value.detach().to(at::kDouble).reshape({});
  const at::Tensor noted = at::stack({at::full({}, static_cast<double>(iteration), options),
                                      at::full({}, static_cast<double>(what), options), v});
  const at::Tensor first_bad = at::logical_and(first_[0] < 0, at::logical_not(at::isfinite(v)));
  first_ = at::where(first_bad, noted, first_);
}

void DivergenceWatch::check() const {
  if (!first_.defined()) return;
  const at::Tensor host = first_.cpu();
  const double* f = host.data_ptr<double>();
  if (f[0] < 0) return;
  std::ostringstream message;
  message << "training diverged: the " << what_.at(static_cast<size_t>(f[1])) << " is " << f[2] << " at iteration "
          << static_cast<int64_t>(f[0]) + 1 << " (the last checkpoint is kept)";
  throw std::runtime_error(message.str());
}

}  // namespace psearch::engine
