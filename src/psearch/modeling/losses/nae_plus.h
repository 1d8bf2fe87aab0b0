#pragma once
/// NAE+, the pixel-wise extension of the norm-aware embedding (NAE paper Sec. 3.2): a 1x1
/// conv gives D x k x k embeddings per RoI, each pixel's norm becomes a person probability
/// r~_i (trained with Eq. 6 against labels rasterised from the ground-truth box), and the
/// probabilities weight the angles when the map is pooled. See docs/losses.md.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "psearch/modeling/losses/nae_loss.h"

namespace psearch::modeling {

/// What PixelWiseNormAwareEmbedding gives for N RoIs with D x H x W embedding maps.
struct PixelNormAwareOutput {
  at::Tensor angle;   ///< [N, D, H, W] per-pixel unit vectors theta_i
  at::Tensor prob;    ///< [N, 1, H, W] per-pixel r~_i = sigmoid(logits)
  at::Tensor logits;  ///< [N, 1, H, W] BN(|x_i|), the input of Eq. 6
  /// [N, D] mean over pixels of r~_i * theta_i: the vector the official code trains with
  /// OIM and, L2-normalised and scaled by nae_plus_scores, outputs at inference.
  at::Tensor pooled;
};

/// The NAE+ head on top of the 1x1-conv projection: holds only the rescaler BN (batch
/// statistics over N x H x W, as torch.nn.BatchNorm2d(1)), registered as "rescaler".
class PixelWiseNormAwareEmbeddingImpl : public torch::nn::Module {
 public:
  PixelWiseNormAwareEmbeddingImpl();

  /// x: [N, D, H, W] -> see PixelNormAwareOutput.
  PixelNormAwareOutput forward(const at::Tensor& x);

  NormRescaler rescaler{nullptr};
};
TORCH_MODULE(PixelWiseNormAwareEmbedding);

/// Per-pixel labels of Fig. 4. For each RoI, a mask of the RoI's size (ceil of its width and
/// height, in pixels) is 1 on its intersection with the paired ground-truth box (start
/// floored, end ceiled and inclusive, as in the official code) and 0 elsewhere, then resized
/// to k x k by bilinear interpolation with align_corners = false (F.interpolate). RoIs with
/// no positive-area intersection, or with zero width or height, get all zeros.
/// proposals, gt_boxes: [N, 4] (x1, y1, x2, y2), row i paired with row i -> [N, 1, k, k]
/// in the proposals' dtype and device. Computed in closed form (the mask is separable), so
/// the cost does not depend on the box sizes.
at::Tensor nae_plus_pixel_labels(const at::Tensor& proposals, const at::Tensor& gt_boxes,
                                 int64_t k = 7);

/// Eq. 6 averaged over RoIs as well: the mean over N x H x W of the binary cross entropy of
/// sigmoid(logits) against the soft labels. logits, labels: [N, 1, H, W] -> [].
/// 0 (with zero gradient) when N = 0.
at::Tensor nae_plus_detection_loss(const at::Tensor& logits, const at::Tensor& labels);

/// Inference confidence (Sec. 3.2): the mean pixel probability of each RoI divided by the
/// largest one of its image. logits: [N, 1, H, W] with the RoIs of image j in the j-th
/// block of boxes_per_image (which must sum to N) -> [N] in (0, 1].
at::Tensor nae_plus_scores(const at::Tensor& logits, const std::vector<int64_t>& boxes_per_image);

/// Inference embedding: normalize(pooled) * scores. pooled: [N, D], scores: [N] -> [N, D].
at::Tensor nae_plus_embedding(const at::Tensor& pooled, const at::Tensor& scores);

/// NAE+ starts from a trained NAE (Sec. 4.2): the FC projection weight [out, in] becomes
/// the weight of an equivalent 1x1 conv, [out, in, 1, 1] (a copy). The bias, the
/// projection BN and the rescaler carry over unchanged (their shapes do not change).
at::Tensor fc_weight_to_conv1x1(const at::Tensor& fc_weight);

}  // namespace psearch::modeling
