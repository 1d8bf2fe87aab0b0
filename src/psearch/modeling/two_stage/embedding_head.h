#pragma once
/// The projection from RoI features to the person embedding x of OIM-base, NAE and NAE+
/// (NAE paper Sec. 3, "GAP and FC give the 256-d vector x").
///
/// Two layouts, chosen by model.embedding.fuse_res4:
///   fuse_res4 = false   x = BN(FC(GAP(conv5 map)))                          [K, d]
///   fuse_res4 = true    x = [BN(FC(GAP(C4 RoI map))), BN(FC(GAP(conv5 map)))] [K, d/2 + d/2]
/// The second is the official NAE4PS head (its "embedding_feat_fuse"); both are the paper's
/// GAP + FC, the fused one adds the RoI's mid-level (C4) features.
///
/// NAE+ (pixel-wise, Sec. 3.2) uses the same parameters as 1x1 convolutions on the maps
/// instead of FCs on their averages, giving [K, d, k, k]; the C4 branch's map (R x R, 14) is
/// resized bilinearly to the conv5 map's k x k (7). Since a 1x1 conv, the BN and the
/// resize are all linear per pixel, averaging the NAE+ map over space gives back NAE's x
/// (for the same parameters in eval mode), which is why NAE+ can start from a trained NAE.
///
/// Parameters (a Sequential of projection then BN per branch, so the names are stable):
///   proj_res4.0.{weight,bias}  [d/2, C4] (FC) or [d/2, C4, 1, 1] (conv)   (fuse_res4)
///   proj_res4.1.*               BatchNorm1d / BatchNorm2d(d/2)
///   proj_res5.0.{weight,bias}  [d or d/2, C5] or [.., C5, 1, 1]
///   proj_res5.1.*               BatchNorm1d / BatchNorm2d
/// Initialised as the official code: weights N(0, 0.01), biases 0, BN weight N(0, 0.01).
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "psearch/checkpoint/state_dict.h"

namespace psearch::modeling {

struct EmbeddingHeadOptions {
  /// Channels of the C4 RoI map and of the conv5 map (1024 and 2048 for ResNet-50).
  TORCH_ARG(int64_t, res4_channels) = 1024;
  TORCH_ARG(int64_t, res5_channels) = 2048;
  /// Embedding dimension d (even when fuse_res4).
  TORCH_ARG(int64_t, dim) = 256;
  TORCH_ARG(bool, fuse_res4) = true;
  /// NAE+: 1x1 convs giving a d x k x k map per RoI instead of FCs giving a d vector.
  TORCH_ARG(bool, pixel_wise) = false;
  /// Vector form: "avg" (GAP, the paper) or "max" (the official NAE4PS code) over each map.
  TORCH_ARG(std::string, feature_pool) = "avg";
  /// Start of the projection BatchNorm's weight: "official" N(0, 0.01) (NAE4PS) or "unit" 1.
  TORCH_ARG(std::string, bn_init) = "official";
};

class EmbeddingHeadImpl : public torch::nn::Module {
 public:
  explicit EmbeddingHeadImpl(const EmbeddingHeadOptions& options);

  /// res4: [K, C4, R, R] RoIAlign of C4; res5: [K, C5, k, k] conv5 head output.
  /// Returns x: [K, d] (vector form) or [K, d, k, k] (pixel_wise).
  at::Tensor forward(const at::Tensor& res4, const at::Tensor& res5);

  const EmbeddingHeadOptions& options() const { return options_; }

 private:
  EmbeddingHeadOptions options_;
  torch::nn::Sequential proj_res4_{nullptr};
  torch::nn::Sequential proj_res5_{nullptr};
};
TORCH_MODULE(EmbeddingHead);

/// Turns the state of a vector-form head (keys under `prefix`, e.g.
/// "embedding_head.proj_res5.0.weight") into the pixel-wise form, in place: each FC weight
/// [o, i] becomes a 1x1 conv weight [o, i, 1, 1]; biases and BN entries keep their shapes
/// (BatchNorm1d and BatchNorm2d share names and shapes). The NAE -> NAE+ initialisation.
void embedding_state_to_pixel_wise(checkpoint::TensorMap& state, const std::string& prefix);

}  // namespace psearch::modeling
