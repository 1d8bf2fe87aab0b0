#pragma once
/// Batch normalisation that trains, as torch.nn.BatchNorm1d/2d, and as
/// torch.nn.SyncBatchNorm inside a data-parallel job (docs/distributed.md): training-mode
/// statistics are then those of the whole job's batch, so a job of W ranks with B images
/// each normalises as one process with W x B images would, and every rank's running
/// statistics stay equal.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace psearch::modeling {

/// x: [N, C] or [N, C, *]. Training mode: normalises with the batch mean and biased
/// variance per channel (over the job's batch in a job), and moves running_mean /
/// running_var (unbiased variance) by `momentum`, as torch. A batch with a single value
/// per channel (in the whole job) has no variance: it is normalised with the running
/// statistics instead, which are then left unchanged. Eval mode: running statistics.
/// weight / bias may be undefined (no affine transform).
at::Tensor batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      const at::Tensor& running_mean, const at::Tensor& running_var, bool training, double momentum,
                      double eps);

/// torch.nn.BatchNorm1d / BatchNorm2d (same parameters, buffers and defaults, so torchvision
/// files and older psearch checkpoints load) computing with batch_norm() above. Every
/// BatchNorm that trains in psearch's models is one of these.
class BatchNormImpl : public torch::nn::Module {
 public:
  explicit BatchNormImpl(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  /// [N, C] or [N, C, *] -> the same shape.
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  double eps_, momentum_;
};
TORCH_MODULE(BatchNorm);

}  // namespace psearch::modeling
