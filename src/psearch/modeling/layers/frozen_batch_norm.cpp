#include "psearch/modeling/layers/frozen_batch_norm.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/zeros.h>

namespace psearch::modeling {

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t num_features, double eps) : eps_(eps) {
  weight = register_buffer("weight", at::ones({num_features}));
  bias = register_buffer("bias", at::zeros({num_features}));
  running_mean = register_buffer("running_mean", at::zeros({num_features}));
  running_var = register_buffer("running_var", at::ones({num_features}));
}

at::Tensor FrozenBatchNorm2dImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == num_features(), "FrozenBatchNorm2d expects [B, ",
              num_features(), ", H, W], got ", x.sizes());
  // Folding into one scale and shift keeps it a single fused multiply-add per element.
  const at::Tensor scale = weight * at::rsqrt(running_var + eps_);
  const at::Tensor shift = bias - running_mean * scale;
  return x * scale.view({1, -1, 1, 1}) + shift.view({1, -1, 1, 1});
}

}  // namespace psearch::modeling
