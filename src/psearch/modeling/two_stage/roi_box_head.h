#pragma once
/// Faster R-CNN C4 RoI box head with the semantics of torchvision 0.26's
/// torchvision.models.detection.roi_heads.RoIHeads (box branch only, person/background):
/// training-sample selection, fastrcnn_loss and postprocess_detections give the same
/// results as torchvision on the same inputs (tests/cpp/roi_box_head_test.cpp).
/// The module itself (RoIAlign on C4 -> conv5 head -> average pool -> predictor) follows
/// the NAE / OIM baseline; the predictor's parameter names are those of torchvision's
/// FastRCNNPredictor ("cls_score", "bbox_pred").
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/matcher.h"
#include "psearch/boxes/sampler.h"
#include "psearch/modeling/layers/batch_norm.h"

namespace psearch::config {
struct RoiHeadsConfig;
}

namespace psearch::modeling {

struct RoIBoxHeadOptions {
  /// Matcher: IoU >= fg is foreground, < bg background, in between ignored (label -1,
  /// never sampled). No low-quality matches: gt boxes are appended to the proposals, so
  /// every ground truth has a proposal with IoU 1.
  TORCH_ARG(double, fg_iou_thresh) = 0.5;
  TORCH_ARG(double, bg_iou_thresh) = 0.5;
  /// Background proposals whose best IoU is below this are ignored too (label -1): the
  /// Detectron / OIM "BG_THRESH_LO" rule (config roi_heads.bg_iou_thresh_lo). 0 (default)
  /// keeps every background proposal, as torchvision.
  TORCH_ARG(double, bg_iou_thresh_lo) = 0.0;
  /// Proposals sampled per image for the losses, and the largest share of foreground.
  TORCH_ARG(int64_t, batch_size_per_image) = 128;
  TORCH_ARG(double, positive_fraction) = 0.5;
  /// (wx, wy, ww, wh) of the box coder.
  TORCH_ARG(std::vector<double>, bbox_reg_weights) = std::vector<double>{10.0, 10.0, 5.0, 5.0};
  /// Postprocessing: class probability must be > score_thresh; NMS IoU per class; boxes
  /// kept per image.
  TORCH_ARG(double, score_thresh) = 0.05;
  TORCH_ARG(double, nms_thresh) = 0.5;
  TORCH_ARG(int64_t, detections_per_img) = 100;
  /// RoIAlign on C4 (stride 16): output size, samples per bin (<= 0: adaptive), pixel model.
  TORCH_ARG(int64_t, pooler_resolution) = 14;
  TORCH_ARG(double, spatial_scale) = 1.0 / 16.0;
  TORCH_ARG(int64_t, sampling_ratio) = 0;
  TORCH_ARG(bool, aligned) = false;
  /// Classes including background (2 for person search: background, person).
  TORCH_ARG(int64_t, num_classes) = 2;
  /// How the conv5 map becomes the vector the predictor sees: "avg" (global average
  /// pooling, the paper's GAP) or "max" (what the official NAE4PS code does).
  TORCH_ARG(std::string, feature_pool) = "avg";
  /// Whether the head has its own classifier (cls_score). OIM-base scores persons with it;
  /// NAE and NAE+ score them with the embedding norm instead and have none.
  TORCH_ARG(bool, with_classifier) = true;
  /// BatchNorm1d(4C) after bbox_pred, registered as "bbox_bn" (official NAE4PS
  /// CoordRegressor with RCNN_bbox_bn; weight ~ N(0, 0.01), bias 0).
  TORCH_ARG(bool, bbox_reg_bn) = false;
};

/// The options a config section asks for (model.roi_heads of configs/*.yaml): matcher,
/// sampler, box coder and RoIAlign settings; postprocessing keeps its defaults.
RoIBoxHeadOptions roi_box_head_options_from_config(const config::RoiHeadsConfig& config);

/// The sampled proposals of a batch, per image (torchvision's select_training_samples).
struct RoISamples {
  /// [S_i, 4] sampled proposals from the list (proposals ++ gt boxes), positives and
  /// negatives together in increasing index order of that list (torch.where(pos | neg)).
  std::vector<at::Tensor> proposals;
  /// int64 [S_i]: index of the matched gt box, clamped to 0 for background as torchvision
  /// does; meaningful only where labels > 0 (use it to attach identity labels).
  std::vector<at::Tensor> matched_idxs;
  /// int64 [S_i]: class of the matched gt (>= 1) or 0 for background.
  std::vector<at::Tensor> labels;
  /// [S_i, 4] regression targets (dx, dy, dw, dh) of the matched gt w.r.t. the proposal
  /// (against a zero box for images without ground truth; unused there since no positives).
  std::vector<at::Tensor> regression_targets;
};

/// Detections of one image (torchvision's postprocess_detections).
struct RoIDetections {
  at::Tensor boxes;      ///< [D, 4] clipped to the image, by decreasing score
  at::Tensor scores;     ///< [D] class probabilities
  at::Tensor labels;     ///< int64 [D] classes (>= 1)
  at::Tensor proposal;   ///< int64 [D] index of the proposal (row of this image's input) it came from
};

/// Training-sample selection: appends gt_boxes[i] to proposals[i], matches by IoU, draws a
/// balanced sample with the default generator (same random stream as torchvision after
/// the same seed) and encodes regression targets. proposals[i]: [N_i, 4]; gt_boxes[i]:
/// [G_i, 4] (G_i may be 0); gt_labels[i]: int64 [G_i] classes >= 1 (person: 1).
RoISamples select_training_samples(const std::vector<at::Tensor>& proposals, const std::vector<at::Tensor>& gt_boxes,
                                   const std::vector<at::Tensor>& gt_labels, const RoIBoxHeadOptions& options);

/// fastrcnn_loss: class_logits [S, C]; box_regression [S, 4C]; labels / regression_targets
/// concatenated over images ([S], [S, 4]). Returns {"loss_classifier", "loss_box_reg"}:
/// mean cross-entropy, and smooth L1 (beta 1/9) of the positives' own-class deltas summed
/// and divided by S. Without positives (no ground truth) the box loss is exactly 0 (and
/// still connected to box_regression's graph, so backward works).
std::map<std::string, at::Tensor> fastrcnn_loss(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                const at::Tensor& labels, const at::Tensor& regression_targets);

/// The box part of fastrcnn_loss alone (for heads that score persons another way):
/// box_regression [S, 4C], labels [S], regression_targets [S, 4] -> [].
at::Tensor fastrcnn_box_loss(const at::Tensor& box_regression, const at::Tensor& labels,
                             const at::Tensor& regression_targets);

/// postprocess_detections: class_logits [sum N_i, C]; box_regression [sum N_i, 4C];
/// proposals[i]: [N_i, 4]; image_sizes[i]: (h, w). Softmax, per-class decoding, clipping,
/// background dropped, score > score_thresh, boxes smaller than 1e-2 dropped, NMS per class,
/// the first detections_per_img kept.
std::vector<RoIDetections> postprocess_detections(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                  const std::vector<at::Tensor>& proposals,
                                                  const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                  const RoIBoxHeadOptions& options);

/// postprocess_detections from class probabilities [sum N_i, C] (rows summing to 1) instead
/// of logits: for heads whose person score does not come from a softmax (NAE's norm).
std::vector<RoIDetections> postprocess_detections_from_probs(const at::Tensor& class_probs,
                                                             const at::Tensor& box_regression,
                                                             const std::vector<at::Tensor>& proposals,
                                                             const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                             const RoIBoxHeadOptions& options);

/// Outputs of the C4 box head for a set of RoIs.
struct RoIBoxHeadOutput {
  at::Tensor pooled;          ///< [K, C4, R, R] RoIAlign of C4 (R = pooler_resolution)
  at::Tensor maps;            ///< [K, D, r, r] conv5 head output (r = R / 2 for ResNet layer4)
  at::Tensor features;        ///< [K, D] maps pooled over space (feature_pool; D = 2048 for ResNet-50)
  at::Tensor class_logits;    ///< [K, num_classes]; undefined without a classifier
  at::Tensor box_regression;  ///< [K, 4 * num_classes]
};

/// RoIAlign on C4 -> conv5 head -> global average pool -> cls_score / bbox_pred.
/// Parameters: head.* (the conv5 head, e.g. ResNet layer4: head.0.conv1.weight ...),
/// cls_score.{weight,bias} (with_classifier), bbox_pred.{weight,bias}, bbox_bn.* (bbox_reg_bn).
class RoIBoxHeadImpl : public torch::nn::Module {
 public:
  /// head: the conv5 head (ResNet layer(4)), mapping [K, C4, R, R] to [K, out_channels, r, r].
  RoIBoxHeadImpl(torch::nn::Sequential head, int64_t out_channels, const RoIBoxHeadOptions& options = {});

  /// features: C4 [B, C, H, W]; proposals[i]: [K_i, 4] image-pixel boxes of image i.
  RoIBoxHeadOutput forward(const at::Tensor& features, const std::vector<at::Tensor>& proposals);

  /// RoIAlign of the proposals: [sum K_i, C, R, R].
  at::Tensor pool(const at::Tensor& features, const std::vector<at::Tensor>& proposals) const;

  const RoIBoxHeadOptions& options() const { return options_; }

 private:
  RoIBoxHeadOptions options_;
  torch::nn::Sequential head_{nullptr};
  torch::nn::Linear cls_score_{nullptr};
  torch::nn::Linear bbox_pred_{nullptr};
  BatchNorm bbox_bn_{nullptr};
};
TORCH_MODULE(RoIBoxHead);

}  // namespace psearch::modeling
