#pragma once
/// Region proposal network of Faster R-CNN with the semantics of torchvision 0.26's
/// torchvision.models.detection.rpn (RPNHead + RegionProposalNetwork), so that with the
/// same weights and inputs it gives the same proposals and losses, and torchvision
/// checkpoints load by name ("head.conv.0.0.weight", "head.cls_logits.bias", ...).
///
/// Person search runs it on a single feature map (ResNet C4), but it takes a list of maps
/// (FPN-style): top-n selection and NMS then work per map, as in torchvision.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "psearch/boxes/anchor_generator.h"
#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/matcher.h"
#include "psearch/boxes/sampler.h"
#include "psearch/modeling/input/image_sizes.h"

namespace psearch::config {
struct RpnConfig;
}

namespace psearch::modeling {

struct RPNOptions {
  /// Anchor sizes (sqrt of the area, input pixels) and height/width ratios, one list per
  /// feature map; every map must have the same number of anchors per cell.
  TORCH_ARG(std::vector<std::vector<double>>, anchor_sizes) = {{32, 64, 128, 256, 512}};
  TORCH_ARG(std::vector<std::vector<double>>, aspect_ratios) = {{0.5, 1.0, 2.0}};
  /// 3x3 conv + ReLU layers of the head (torchvision's conv_depth).
  TORCH_ARG(int64_t, conv_depth) = 1;
  /// Matcher: IoU >= fg is positive, < bg negative, in between ignored; each ground truth
  /// also keeps its best anchors (allow_low_quality_matches), as in Faster R-CNN.
  TORCH_ARG(double, fg_iou_thresh) = 0.7;
  TORCH_ARG(double, bg_iou_thresh) = 0.3;
  /// Anchors sampled per image for the losses, and the largest share of positives.
  TORCH_ARG(int64_t, batch_size_per_image) = 256;
  TORCH_ARG(double, positive_fraction) = 0.5;
  /// Proposals kept per feature map before NMS / per image after NMS, in training
  /// (is_training()) and in evaluation mode.
  TORCH_ARG(int64_t, pre_nms_top_n_train) = 2000;
  TORCH_ARG(int64_t, pre_nms_top_n_test) = 1000;
  TORCH_ARG(int64_t, post_nms_top_n_train) = 2000;
  TORCH_ARG(int64_t, post_nms_top_n_test) = 1000;
  TORCH_ARG(double, nms_thresh) = 0.7;
  /// Proposals with objectness probability < score_thresh are dropped (torchvision uses >=).
  TORCH_ARG(double, score_thresh) = 0.0;
  /// Proposals narrower or lower than this (pixels) are dropped.
  TORCH_ARG(double, min_size) = 1e-3;
};

/// The options a config section asks for (model.rpn of configs/*.yaml).
RPNOptions rpn_options_from_config(const config::RpnConfig& config);

/// Proposals (and, in training, the RPN losses) of a batch.
struct RPNOutput {
  /// Per image [K_i, 4] (x1, y1, x2, y2) in input pixels, by decreasing objectness,
  /// K_i <= post_nms_top_n. Detached: Faster R-CNN does not backpropagate through them.
  std::vector<at::Tensor> boxes;
  /// Per image [K_i] objectness probabilities of `boxes`.
  std::vector<at::Tensor> scores;
  /// In training: "loss_objectness" and "loss_rpn_box_reg", 0-dim; empty in evaluation.
  std::map<std::string, at::Tensor> losses;
};

/// Head outputs flattened over maps, cells and anchors, in the anchor generator's order
/// (map, then row, then column, then cell anchor).
struct RPNPredictions {
  at::Tensor objectness;                  ///< [B, T] logits
  at::Tensor deltas;                      ///< [B, T, 4] (dx, dy, dw, dh)
  std::vector<int64_t> anchors_per_map;  ///< T_l = H_l * W_l * A per map; sum T_l = T
};

/// 3x3 conv + ReLU (shared by all maps), then 1x1 convs for objectness and box deltas.
/// Parameter names follow torchvision: conv.0.0.{weight,bias} (conv.1.0 ... for deeper
/// heads), cls_logits.{weight,bias}, bbox_pred.{weight,bias}. Initialised as torchvision:
/// weights N(0, 0.01), biases 0.
class RPNHeadImpl : public torch::nn::Module {
 public:
  RPNHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t conv_depth = 1);

  /// features[l]: [B, C, H_l, W_l]. Returns per map the objectness logits [B, A, H_l, W_l]
  /// and the box deltas [B, 4A, H_l, W_l] (anchor a's deltas in channels 4a .. 4a+3).
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> forward(const std::vector<at::Tensor>& features);

 private:
  torch::nn::Sequential conv{nullptr};
  torch::nn::Conv2d cls_logits{nullptr};
  torch::nn::Conv2d bbox_pred{nullptr};
};
TORCH_MODULE(RPNHead);

class RegionProposalNetworkImpl : public torch::nn::Module {
 public:
  /// in_channels: channels of every feature map (1024 for ResNet-50 C4).
  explicit RegionProposalNetworkImpl(int64_t in_channels, const RPNOptions& options = {});

  /// sizes: the batch; features[l]: [B, C, H_l, W_l], one per anchor_sizes entry.
  /// gt_boxes: per image [G_i, 4] ground-truth boxes (G_i may be 0); required in training
  /// mode, where the losses are computed, and ignored in evaluation mode (as torchvision).
  /// Throws c10::Error on inconsistent inputs.
  RPNOutput forward(const ImageSizes& sizes, const std::vector<at::Tensor>& features,
                    const std::optional<std::vector<at::Tensor>>& gt_boxes = std::nullopt);

  // The steps of forward(), public so that each can be checked on its own.

  /// Runs the head and flattens its outputs.
  RPNPredictions predict(const std::vector<at::Tensor>& features);

  /// Anchors of one image of the batch: [T, 4], dtype and device of the features.
  at::Tensor anchors(const ImageSizes& sizes, const std::vector<at::Tensor>& features) const;

  /// Proposal selection: per map the top pre_nms_top_n logits, then per image: clip to
  /// the image, drop boxes smaller than min_size and scores below score_thresh, NMS per
  /// map, keep the first post_nms_top_n. proposals: [B, T, 4] decoded boxes; objectness:
  /// [B, T] logits. Returns (boxes [K_i, 4], probabilities [K_i]) per image.
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> filter_proposals(
      const at::Tensor& proposals, const at::Tensor& objectness,
      const std::vector<std::array<int64_t, 2>>& image_sizes,
      const std::vector<int64_t>& anchors_per_map) const;

  /// Losses against the ground truth: anchors matched by IoU, a balanced sample of
  /// batch_size_per_image per image (default random generator, the same stream as
  /// torchvision after the same seed), binary cross-entropy with logits (mean over the
  /// sample) and smooth L1 with beta 1/9 on the positives, summed and divided by the sample
  /// size. An image without ground truth contributes negatives only; with none in the
  /// batch the box loss is exactly 0.
  std::map<std::string, at::Tensor> compute_loss(const RPNPredictions& predictions, const at::Tensor& anchors,
                                                 const std::vector<at::Tensor>& gt_boxes) const;

  const RPNOptions& options() const { return options_; }
  const boxes::AnchorGenerator& anchor_generator() const { return anchor_generator_; }
  RPNHead head() const { return head_; }

 private:
  int64_t pre_nms_top_n() const;
  int64_t post_nms_top_n() const;
  at::Tensor top_n_per_map(const at::Tensor& objectness, const std::vector<int64_t>& anchors_per_map) const;
  std::pair<at::Tensor, at::Tensor> assign_targets(const at::Tensor& anchors, const at::Tensor& gt_boxes) const;

  RPNOptions options_;
  boxes::AnchorGenerator anchor_generator_;
  boxes::BoxCoder box_coder_;
  boxes::Matcher matcher_;
  boxes::BalancedPositiveNegativeSampler sampler_;
  RPNHead head_{nullptr};
};
TORCH_MODULE(RegionProposalNetwork);

}  // namespace psearch::modeling
