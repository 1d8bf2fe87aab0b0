#pragma once
/// Mixed-precision training (train.precision, docs/training.md): the forward pass under
/// LibTorch's autocast, and for float16 dynamic loss scaling with torch.amp.GradScaler's
/// rule, computed by the same ATen kernels GradScaler calls.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace psearch::engine {

/// The precision names: "fp32" (no autocast), "bf16", "fp16".
const std::vector<std::string>& precision_names();

/// A name of precision_names() -> the autocast dtype (Float for fp32).
at::ScalarType precision_dtype(const std::string& precision);

/// Enables autocast on `device` with `dtype` for its lifetime (nothing for Float), and
/// restores the previous state; the cast cache is cleared when the outermost scope ends.
class AutocastScope {
 public:
  AutocastScope(c10::Device device, at::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_type_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

/// torch.amp.GradScaler's dynamic loss scale: the loss is multiplied by `scale` before
/// backward; gradients are divided by it and checked; a step whose gradients hold an inf
/// or NaN is skipped and the scale halves; after `growth_interval` clean steps in a row it
/// doubles. Defaults are GradScaler's (65536, 2, 0.5, 2000).
class LossScaler {
 public:
  explicit LossScaler(c10::Device device, double initial_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5, int64_t growth_interval = 2000);

  /// loss * scale.
  at::Tensor scale(const at::Tensor& loss) const;

  /// Divides the gradients of `parameters` by the scale in place; returns whether any of
  /// them is inf / NaN (then the step must be skipped). Then updates the scale.
  bool unscale_and_update(const std::vector<at::Tensor>& parameters);

  double current_scale() const;

  /// [2] float64 on the CPU: the scale and the count of finite steps since it last
  /// changed (what GradScaler's state_dict holds), for checkpoints.
  at::Tensor state() const;
  /// Continues from a state() of an earlier run (--resume), so a resumed fp16 run neither
  /// restarts at the initial scale nor loses its progress towards the next growth.
  void restore(const at::Tensor& state);

 private:
  at::Tensor scale_, growth_tracker_;
  double growth_factor_, backoff_factor_;
  int64_t growth_interval_;
};

}  // namespace psearch::engine
