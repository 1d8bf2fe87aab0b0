#pragma once
/// Norm-aware embedding (NAE paper Sec. 3.1): the embedding x = r * theta (Eq. 1) is split
/// into its norm r, which becomes the detection confidence r~ (Eq. 2) trained with binary
/// cross entropy (Eq. 5), and its angle theta, trained with OIM. The output embedding is
/// r~ * theta (Eq. 3). See docs/losses.md.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace psearch::modeling {

/// The BatchNorm of Eq. 2 on the single channel "norm": affine (gamma = 1, beta = 0 at
/// start), batch statistics in training mode, running statistics (momentum 0.1, eps 1e-5)
/// in eval mode, i.e. torch.nn.BatchNorm1d(1) for [N, 1] inputs and BatchNorm2d(1) for
/// [N, 1, H, W] inputs. Parameter and buffer names are torch's ("weight", "bias",
/// "running_mean", "running_var", "num_batches_tracked"), so the official NAE4PS
/// "rescaler" entries load unchanged.
class NormRescalerImpl : public torch::nn::Module {
 public:
  NormRescalerImpl();

  /// norms: [N, 1] or [N, 1, H, W] -> logits of the same shape. In training mode also
  /// updates the running statistics (over the whole job's batch in a data-parallel job; a
  /// single value, which has no variance, is normalised with the running statistics).
  at::Tensor forward(const at::Tensor& norms);

  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

  static constexpr double kMomentum = 0.1;
  static constexpr double kEps = 1e-5;
};
TORCH_MODULE(NormRescaler);

/// What NormAwareEmbedding gives for N embeddings.
struct NormAwareOutput {
  at::Tensor angle;   ///< [N, D] theta = x / |x|: the OIM input and the query embedding
  at::Tensor prob;    ///< [N] r~ = sigmoid(logits), the detection confidence (Eq. 2)
  at::Tensor logits;  ///< [N] BN(|x|), the input of the detection loss (Eq. 5)
};

/// The NAE head on top of the projection x (GAP + FC, built by the model): holds only the
/// rescaler BN, registered as "rescaler" as in the official code.
class NormAwareEmbeddingImpl : public torch::nn::Module {
 public:
  NormAwareEmbeddingImpl();

  /// x: [N, D] -> angle [N, D], prob [N], logits [N].
  NormAwareOutput forward(const at::Tensor& x);

  NormRescaler rescaler{nullptr};
};
TORCH_MODULE(NormAwareEmbedding);

/// Eq. 3: x~ = r~ * theta. angle: [N, D], prob: [N] -> [N, D]. A query box is known to
/// hold a person, so its embedding is the angle itself (norm set to 1, Sec. 3.1).
at::Tensor norm_aware_embedding(const at::Tensor& angle, const at::Tensor& prob);

/// Eq. 5, averaged over the N RoIs: mean binary cross entropy of sigmoid(logits) against
/// labels (1 person, 0 background; bool or any numeric type). logits, labels: [N] -> [].
/// Computed from logits for numerical stability. 0 (with zero gradient) when N = 0.
at::Tensor nae_detection_loss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace psearch::modeling
