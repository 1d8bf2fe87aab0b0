#pragma once
/// What the trainer checks at every step without waiting for the device: gradient clipping
/// whose norm stays a device tensor, and a record of the first non-finite loss or gradient
/// norm that is read (one host sync) only when the trainer logs or checkpoints. On a GPU a
/// `.item()` per step stalls the CPU until the step has run, so the next iteration's
/// launches cannot overlap it; torch's Python clip_grad_norm_ returns a tensor for the
/// same reason (LibTorch's C++ one returns a double, i.e. syncs).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace psearch::engine {

/// The gradients of `parameters` (those that have one), grouped by device and dtype: the
/// _foreach_* kernels take one device and dtype per call, as torch's clip_grad_norm_ and
/// GradScaler group them. Each group is non-empty.
std::vector<std::vector<at::Tensor>> gradients_by_device_and_dtype(const std::vector<at::Tensor>& parameters);

/// torch.nn.utils.clip_grad_norm_(parameters, max_norm) with the L2 norm: scales every
/// gradient in place by min(1, max_norm / (total + 1e-6)) where total is the L2 norm of
/// all gradients together, and returns total as a [] float32 tensor on the gradients'
/// device (no host sync). max_norm = inf: measures only. Parameters without a gradient are
/// skipped; none at all gives 0.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);

/// The first step whose watched value was inf or NaN, kept on the device.
class DivergenceWatch {
 public:
  /// The names of the values watched, by index in observe().
  explicit DivergenceWatch(std::vector<std::string> what) : what_(std::move(what)) {}

  /// Notes `value` ([] tensor, any floating dtype and device) as watched value `what` of
  /// `iteration` (0-based); remembers it only if no earlier non-finite value was noted.
  /// Queues a few device ops and never waits for them.
  void observe(const at::Tensor& value, size_t what, int64_t iteration);

  /// Waits for the device and throws "training diverged: the <what> is <value> at
  /// iteration <iteration + 1> (the last checkpoint is kept)" if a non-finite value was
  /// noted. Call before writing a checkpoint, so none holds diverged weights.
  void check() const;

 private:
  std::vector<std::string> what_;
  at::Tensor first_;  ///< [3] float64 on the device: iteration (-1: none), what, value
};

}  // namespace psearch::engine
