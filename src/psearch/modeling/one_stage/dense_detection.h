#pragma once
/// What every anchor-based one-stage detector (RetinaNet, PCNet) does around its head:
/// anchors over the pyramid, anchor-to-ground-truth assignment, the focal and box losses,
/// and decoding + NMS of the predictions. The semantics are torchvision 0.26's RetinaNet
/// (retinanet.py: compute_loss, postprocess_detections) by default; the options that
/// maskrcnn-benchmark's RetinaNet (PCNet's official code) sets differently are named so.
///
/// Shapes: B images; T anchors of one image over all levels, ordered level, row, column,
/// cell anchor (the anchor generator's order); K classes (sigmoid, no background column).
#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "psearch/boxes/anchor_generator.h"
#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/matcher.h"
#include "psearch/modeling/input/image_sizes.h"

namespace psearch::modeling {

/// How the classification and box losses are normalised.
enum class DenseLossNorm {
  /// torchvision: per image, focal sum / max(1, positives) and box sum / max(1, positives),
  /// then the mean over images.
  kPerImage,
  /// PCNet's Eq. 14: over the batch, focal sum / max(1, N) and box sum / max(1, N), N the
  /// positives of the batch. (maskrcnn-benchmark, PCNet's official code, divides the focal
  /// sum by N + B and the box sum by 4 N: a constant factor on the box loss weight.)
  kPerBatch,
};

enum class BoxLoss { kL1, kSmoothL1 };

/// (wx, wy, ww, wh) of the box coder.
using BoxCoderWeights = std::array<double, 4>;

struct DenseDetectionOptions {
  /// Anchor sizes (sqrt of the area, input pixels) and height/width ratios per level; each
  /// level needs the same number of anchors per cell. Default: torchvision's RetinaNet
  /// (3 sub-octave sizes x 3 ratios on P3 .. P7).
  TORCH_ARG(std::vector<std::vector<double>>, anchor_sizes) = {
      {32, 40, 50}, {64, 80, 101}, {128, 161, 203}, {256, 322, 406}, {512, 645, 812}};
  TORCH_ARG(std::vector<std::vector<double>>, aspect_ratios) = {
      {0.5, 1.0, 2.0}, {0.5, 1.0, 2.0}, {0.5, 1.0, 2.0}, {0.5, 1.0, 2.0}, {0.5, 1.0, 2.0}};
  /// Matcher: IoU >= fg positive, < bg negative, in between ignored; every ground truth
  /// keeps its best anchors (allow_low_quality_matches), as in RetinaNet.
  TORCH_ARG(double, fg_iou_thresh) = 0.5;
  TORCH_ARG(double, bg_iou_thresh) = 0.4;
  /// Box coder weights (torchvision 1,1,1,1; maskrcnn-benchmark 10,10,5,5).
  TORCH_ARG(BoxCoderWeights, box_coder_weights) = {1.0, 1.0, 1.0, 1.0};
  TORCH_ARG(double, focal_alpha) = 0.25;
  TORCH_ARG(double, focal_gamma) = 2.0;
  TORCH_ARG(BoxLoss, box_loss) = BoxLoss::kL1;
  /// Transition point of the smooth L1 box loss (maskrcnn-benchmark RetinaNet: 0.11).
  TORCH_ARG(double, smooth_l1_beta) = 0.11;
  TORCH_ARG(DenseLossNorm, loss_norm) = DenseLossNorm::kPerImage;
  /// Inference: scores <= score_thresh dropped, then the top topk_candidates per level,
  /// then class-wise NMS over all levels, then the first detections_per_img.
  TORCH_ARG(double, score_thresh) = 0.05;
  TORCH_ARG(int64_t, topk_candidates) = 1000;
  TORCH_ARG(double, nms_thresh) = 0.5;
  TORCH_ARG(int64_t, detections_per_img) = 300;
};

/// Flattened head outputs of a batch.
struct DensePredictions {
  at::Tensor cls_logits;                  ///< [B, T, K]
  at::Tensor box_deltas;                  ///< [B, T, 4]
  std::vector<int64_t> anchors_per_level; ///< T_l = H_l * W_l * A; sum T_l = T
};

/// Detections of one image in the (resized) batch's pixels, by decreasing score.
struct DenseDetections {
  at::Tensor boxes;         ///< [N, 4] (x1, y1, x2, y2), clipped to the image
  at::Tensor scores;        ///< [N] sigmoid probabilities
  at::Tensor labels;        ///< int64 [N] class index in [0, K)
  at::Tensor anchor_index;  ///< int64 [N] index in [0, T) of the anchor each came from
};

/// All candidates of one image that survived the score threshold and the per-level top-k
/// (before NMS), in the same form; keep[i] indexes the kept detections into it.
struct DenseCandidates {
  DenseDetections all;
  at::Tensor keep;  ///< int64 [N] rows of `all`, the NMS survivors in score order
};

class DenseDetector {
 public:
  explicit DenseDetector(const DenseDetectionOptions& options);

  /// Anchors per cell (the same on every level).
  int64_t anchors_per_cell() const { return anchors_per_cell_; }

  /// Anchors of one image (every image of a padded batch has the same): [T, 4] with the
  /// dtype and device of the features. features[l]: [B, C, H_l, W_l].
  at::Tensor anchors(const ImageSizes& sizes, const std::vector<at::Tensor>& features) const;

  /// Per image the matched ground-truth index of every anchor, int64 [T]: >= 0 positive,
  /// Matcher::kBelowLowThreshold background, Matcher::kBetweenThresholds ignored.
  /// gt_boxes[i]: [G_i, 4] in the batch's pixels (G_i may be 0: all background).
  std::vector<at::Tensor> match(const at::Tensor& anchors, const std::vector<at::Tensor>& gt_boxes) const;

  /// "loss_cls" (sigmoid focal loss over the non-ignored anchors) and "loss_box_reg" (L1 or
  /// smooth L1 of the box codes of the positives), normalised as options.loss_norm says.
  /// gt_labels[i]: int64 [G_i] class indices.
  std::map<std::string, at::Tensor> losses(const DensePredictions& predictions, const at::Tensor& anchors,
                                           const std::vector<at::Tensor>& matched,
                                           const std::vector<at::Tensor>& gt_boxes,
                                           const std::vector<at::Tensor>& gt_labels) const;

  /// torchvision's postprocess_detections for image i of the batch: per level the sigmoid
  /// scores > score_thresh, their top topk_candidates, decoded and clipped to the image;
  /// then NMS per class over all levels and the first detections_per_img.
  DenseCandidates detect(const DensePredictions& predictions, const at::Tensor& anchors, int64_t image,
                         std::array<int64_t, 2> image_size) const;

  /// Decoded boxes of every anchor of image i: [T, 4], clipped to image_size.
  at::Tensor decode_all(const DensePredictions& predictions, const at::Tensor& anchors, int64_t image,
                        std::array<int64_t, 2> image_size) const;

  const DenseDetectionOptions& options() const { return options_; }
  const boxes::BoxCoder& box_coder() const { return box_coder_; }

 private:
  DenseDetectionOptions options_;
  boxes::AnchorGenerator anchor_generator_;
  boxes::BoxCoder box_coder_;
  boxes::Matcher matcher_;
  int64_t anchors_per_cell_ = 0;
};

/// torchvision.ops.sigmoid_focal_loss without reduction: elementwise
/// alpha_t * (1 - p_t)^gamma * BCE(logits, targets), p = sigmoid(logits); alpha < 0 turns
/// the alpha weighting off. logits, targets: the same shape.
at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets, double alpha = 0.25,
                              double gamma = 2.0);

}  // namespace psearch::modeling
