#include "psearch/modeling/losses/nae_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/zeros.h>

#include "psearch/modeling/layers/batch_norm.h"

namespace psearch::modeling {

NormRescalerImpl::NormRescalerImpl() {
  // torch.nn.BatchNorm defaults; the official code does not re-initialise its rescaler.
  weight = register_parameter("weight", at::ones({1}));
  bias = register_parameter("bias", at::zeros({1}));
  running_mean = register_buffer("running_mean", at::zeros({1}));
  running_var = register_buffer("running_var", at::ones({1}));
  num_batches_tracked =
      register_buffer("num_batches_tracked", at::zeros({}, at::TensorOptions().dtype(at::kLong)));
}

at::Tensor NormRescalerImpl::forward(const at::Tensor& norms) {
  TORCH_CHECK((norms.dim() == 2 || norms.dim() == 4) && norms.size(1) == 1,
              "NormRescaler expects norms [N, 1] or [N, 1, H, W], got ", norms.sizes());
  if (is_training()) num_batches_tracked.add_(1);  // kept only for state_dict compatibility with torch's BN
  // batch_norm updates running_mean / running_var in place in training mode, with the
  // unbiased batch variance, exactly as torch.nn.BatchNorm; over the whole job's batch in a
  // data-parallel job. A single value (no variance) is normalised with the running statistics.
  return batch_norm(norms, weight, bias, running_mean, running_var, is_training(), kMomentum, kEps);
}

NormAwareEmbeddingImpl::NormAwareEmbeddingImpl() {
  rescaler = register_module("rescaler", NormRescaler());
}

NormAwareOutput NormAwareEmbeddingImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "NormAwareEmbedding expects x [N, D], got ", x.sizes());
  const at::Tensor norms = x.norm(2, {1}, /*keepdim=*/true);  // r of Eq. 1, [N, 1]
  // The clamp only guards the division (as F.normalize); BN sees the true norm.
  const at::Tensor angle = x / norms.clamp_min(1e-12);
  const at::Tensor logits = rescaler->forward(norms).squeeze(1);
  return {angle, at::sigmoid(logits), logits};
}

at::Tensor norm_aware_embedding(const at::Tensor& angle, const at::Tensor& prob) {
  TORCH_CHECK(angle.dim() == 2 && prob.dim() == 1 && prob.size(0) == angle.size(0),
              "norm_aware_embedding expects angle [N, D] and prob [N], got ", angle.sizes(),
              " and ", prob.sizes());
  return angle * prob.unsqueeze(1);
}

at::Tensor nae_detection_loss(const at::Tensor& logits, const at::Tensor& labels) {
  TORCH_CHECK(logits.sizes() == labels.sizes(), "nae_detection_loss: logits ", logits.sizes(),
              " and labels ", labels.sizes(), " differ in shape");
  // A mean over nothing would be NaN; an empty sum is 0 and keeps the graph connected.
  if (logits.numel() == 0) return logits.sum();
  return at::binary_cross_entropy_with_logits(logits, labels.to(logits.scalar_type()));
}

}  // namespace psearch::modeling
