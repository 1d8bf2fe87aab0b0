#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace psearch::modeling {

/// BatchNorm2d with fixed statistics and affine parameters, all held as buffers (so an
/// optimizer never sees them), computing y = (x - mean) / sqrt(var + eps) * weight + bias.
/// Detection backbones use it because their per-GPU batches are too small for batch
/// statistics. Buffer names match torch.nn.BatchNorm2d / torchvision's
/// FrozenBatchNorm2d, so a BatchNorm2d checkpoint loads directly
/// (its `num_batches_tracked` is not needed).
class FrozenBatchNorm2dImpl : public torch::nn::Module {
 public:
  /// eps = 1e-5, torch.nn.BatchNorm2d's default, so converted BN layers compute the same.
  explicit FrozenBatchNorm2dImpl(int64_t num_features, double eps = 1e-5);

  /// x: [B, C, H, W] -> [B, C, H, W].
  at::Tensor forward(const at::Tensor& x);

  int64_t num_features() const { return weight.size(0); }

  at::Tensor weight, bias, running_mean, running_var;

 private:
  double eps_;
};
TORCH_MODULE(FrozenBatchNorm2d);

}  // namespace psearch::modeling
