#include "psearch/modeling/two_stage/rpn.h"

#include <ATen/core/Reduction.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/smooth_l1_loss.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <tuple>

#include "psearch/boxes/box_ops.h"
#include "psearch/config/config.h"
#include "psearch/modeling/layers/conv_relu.h"
#include "psearch/ops/ops.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

/// Smooth L1 transition point of the RPN box loss (torchvision, after Detectron).
constexpr double kSmoothL1Beta = 1.0 / 9.0;


void check_features(const std::vector<at::Tensor>& features, const ImageSizes& sizes, int64_t num_maps) {
  TORCH_CHECK(static_cast<int64_t>(features.size()) == num_maps, "RegionProposalNetwork: anchors are configured for ",
              num_maps, " feature maps, got ", features.size());
  for (size_t l = 0; l < features.size(); ++l) {
    TORCH_CHECK(features[l].defined() && features[l].dim() == 4, "RegionProposalNetwork: feature map ", l,
                " must be [B, C, H, W]");
    TORCH_CHECK(features[l].size(0) == static_cast<int64_t>(sizes.images.size()), "RegionProposalNetwork: feature map ",
                l, " holds ", features[l].size(0), " images but sizes lists ", sizes.images.size());
  }
}

/// Proposals of one image while they are being filtered.
struct Candidates {
  at::Tensor boxes;   // [K, 4]
  at::Tensor scores;  // [K] probabilities
  at::Tensor maps;    // [K] feature-map index
  void keep(const at::Tensor& idx) {
    boxes = boxes.index_select(0, idx);
    scores = scores.index_select(0, idx);
    maps = maps.index_select(0, idx);
  }
};

}  // namespace

RPNOptions rpn_options_from_config(const config::RpnConfig& c) {
  return RPNOptions()
      .anchor_sizes(c.anchor_sizes)
      .aspect_ratios(c.aspect_ratios)
      .conv_depth(c.conv_depth)
      .fg_iou_thresh(c.fg_iou_thresh)
      .bg_iou_thresh(c.bg_iou_thresh)
      .batch_size_per_image(c.batch_size_per_image)
      .positive_fraction(c.positive_fraction)
      .pre_nms_top_n_train(c.pre_nms_top_n_train)
      .pre_nms_top_n_test(c.pre_nms_top_n_test)
      .post_nms_top_n_train(c.post_nms_top_n_train)
      .post_nms_top_n_test(c.post_nms_top_n_test)
      .nms_thresh(c.nms_thresh)
      .score_thresh(c.score_thresh)
      .min_size(c.min_size);
}

// ---------------------------------------------------------------------------------------
// RPNHead

RPNHeadImpl::RPNHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t conv_depth) {
  TORCH_CHECK(conv_depth >= 1, "RPNHead: conv_depth must be >= 1, got ", conv_depth);
  conv = register_module("conv", nn::Sequential());
  for (int64_t i = 0; i < conv_depth; ++i) conv->push_back(ConvReLU(in_channels));
  cls_logits = register_module("cls_logits", nn::Conv2d(nn::Conv2dOptions(in_channels, num_anchors, 1)));
  bbox_pred = register_module("bbox_pred", nn::Conv2d(nn::Conv2dOptions(in_channels, num_anchors * 4, 1)));
  for (auto& p : named_parameters()) {
    if (p.key().find("bias") != std::string::npos) {
      nn::init::zeros_(p.value());
    } else {
      nn::init::normal_(p.value(), 0.0, 0.01);
    }
  }
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RPNHeadImpl::forward(
    const std::vector<at::Tensor>& features) {
  std::vector<at::Tensor> logits, deltas;
  for (const auto& f : features) {
    const at::Tensor t = conv->forward(f);
    logits.push_back(cls_logits->forward(t));
    deltas.push_back(bbox_pred->forward(t));
  }
  return {std::move(logits), std::move(deltas)};
}

// ---------------------------------------------------------------------------------------
// RegionProposalNetwork

RegionProposalNetworkImpl::RegionProposalNetworkImpl(int64_t in_channels, const RPNOptions& options)
    : options_(options),
      anchor_generator_(options.anchor_sizes(), options.aspect_ratios()),
      box_coder_({1.0, 1.0, 1.0, 1.0}),
      matcher_(options.fg_iou_thresh(), options.bg_iou_thresh(), /*allow_low_quality_matches=*/true),
      sampler_(options.batch_size_per_image(), options.positive_fraction()) {
  const std::vector<int64_t> per_cell = anchor_generator_.num_anchors_per_location();
  TORCH_CHECK(std::all_of(per_cell.begin(), per_cell.end(), [&](int64_t n) { return n == per_cell[0]; }),
              "RegionProposalNetwork: one head serves every feature map, so each needs the same number of "
              "anchors per cell");
  head_ = register_module("head", RPNHead(in_channels, per_cell[0], options.conv_depth()));
}

int64_t RegionProposalNetworkImpl::pre_nms_top_n() const {
  return is_training() ? options_.pre_nms_top_n_train() : options_.pre_nms_top_n_test();
}

int64_t RegionProposalNetworkImpl::post_nms_top_n() const {
  return is_training() ? options_.post_nms_top_n_train() : options_.post_nms_top_n_test();
}

RPNPredictions RegionProposalNetworkImpl::predict(const std::vector<at::Tensor>& features) {
  auto [logits, deltas] = head_->forward(features);
  RPNPredictions out;
  std::vector<at::Tensor> flat_logits, flat_deltas;
  for (size_t l = 0; l < logits.size(); ++l) {
    flat_logits.push_back(flatten_per_anchor(logits[l], 1));
    flat_deltas.push_back(flatten_per_anchor(deltas[l], 4));
    out.anchors_per_map.push_back(flat_logits.back().size(1));
  }
  out.objectness = at::cat(flat_logits, 1).squeeze(2);  // [B, T]
  out.deltas = at::cat(flat_deltas, 1);                  // [B, T, 4]
  return out;
}

at::Tensor RegionProposalNetworkImpl::anchors(const ImageSizes& sizes, const std::vector<at::Tensor>& features) const {
  std::vector<std::array<int64_t, 2>> map_sizes;
  for (const auto& f : features) map_sizes.push_back({f.size(2), f.size(3)});
  // Strides come from the padded batch, so every image of the batch has the same anchors.
  return anchor_generator_(sizes.batch, map_sizes, features[0].scalar_type(), features[0].device());
}

at::Tensor RegionProposalNetworkImpl::top_n_per_map(const at::Tensor& objectness,
                                                    const std::vector<int64_t>& anchors_per_map) const {
  std::vector<at::Tensor> picked;
  int64_t offset = 0;
  for (const int64_t n : anchors_per_map) {
    const int64_t k = std::min(pre_nms_top_n(), n);
    const at::Tensor idx = std::get<1>(at::topk(objectness.narrow(1, offset, n), k, /*dim=*/1));
    picked.push_back(idx.add(offset));
    offset += n;
  }
  return at::cat(picked, 1);  // [B, sum_l min(pre_nms_top_n, T_l)]
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RegionProposalNetworkImpl::filter_proposals(
    const at::Tensor& proposals, const at::Tensor& objectness, const std::vector<std::array<int64_t, 2>>& image_sizes,
    const std::vector<int64_t>& anchors_per_map) const {
  const at::Tensor logits = objectness.detach();
  const at::Tensor top = top_n_per_map(logits, anchors_per_map);  // [B, K]
  // Map index of every anchor, so that NMS never lets one map suppress another.
  std::vector<at::Tensor> map_ids;
  for (size_t l = 0; l < anchors_per_map.size(); ++l) {
    map_ids.push_back(at::full({anchors_per_map[l]}, static_cast<int64_t>(l), top.options()));
  }
  const at::Tensor levels = at::cat(map_ids, 0);

  std::vector<at::Tensor> boxes_out, scores_out;
  for (int64_t i = 0; i < proposals.size(0); ++i) {
    const at::Tensor idx = top[i];
    Candidates c{boxes::clip_boxes_to_image(proposals[i].index_select(0, idx), image_sizes[i]),
                 at::sigmoid(logits[i].index_select(0, idx)), levels.index_select(0, idx)};
    // Both filters in one mask: one wait for the device instead of two.
    c.keep(boxes::large_enough_boxes(c.boxes, options_.min_size())
               .logical_and(c.scores.ge(options_.score_thresh()))
               .nonzero()
               .squeeze(1));
    c.keep(ops::batched_nms(c.boxes, c.scores, c.maps, options_.nms_thresh()).slice(0, 0, post_nms_top_n()));
    boxes_out.push_back(std::move(c.boxes));
    scores_out.push_back(std::move(c.scores));
  }
  return {std::move(boxes_out), std::move(scores_out)};
}

std::pair<at::Tensor, at::Tensor> RegionProposalNetworkImpl::assign_targets(const at::Tensor& anchors,
                                                                            const at::Tensor& gt_boxes) const {
  const auto float_opts = anchors.options().dtype(at::kFloat);
  if (gt_boxes.numel() == 0) {
    // A background image: every anchor is a negative; the zero targets are never used.
    return {at::zeros({anchors.size(0)}, float_opts), at::zeros(anchors.sizes(), float_opts)};
  }
  const at::Tensor matched = matcher_(boxes::box_iou(gt_boxes, anchors));  // [T]
  // Labels 1 (matched), 0 (below bg_iou_thresh), -1 (between thresholds: ignored).
  at::Tensor labels = matched.ge(0).to(at::kFloat);
  labels.masked_fill_(matched.eq(boxes::Matcher::kBetweenThresholds), -1.0);
  // Unmatched anchors get ground truth 0; their targets are never used.
  const at::Tensor matched_gt = gt_boxes.index_select(0, matched.clamp_min(0));
  return {labels, matched_gt};
}

std::map<std::string, at::Tensor> RegionProposalNetworkImpl::compute_loss(const RPNPredictions& predictions,
                                                                          const at::Tensor& anchors,
                                                                          const std::vector<at::Tensor>& gt_boxes) const {
  TORCH_CHECK(static_cast<int64_t>(gt_boxes.size()) == predictions.objectness.size(0),
              "RegionProposalNetwork: ", predictions.objectness.size(0), " images but ", gt_boxes.size(),
              " ground-truth lists");
  std::vector<at::Tensor> labels, targets;
  for (size_t i = 0; i < gt_boxes.size(); ++i) {
    boxes::check_boxes_2d(gt_boxes[i], "RegionProposalNetwork", "gt_boxes[" + std::to_string(i) + "]");
    auto [image_labels, matched_gt] = assign_targets(anchors, gt_boxes[i]);
    targets.push_back(box_coder_.encode_single(matched_gt, anchors));
    labels.push_back(std::move(image_labels));
  }
  const auto [pos_masks, neg_masks] = sampler_(labels);
  const at::Tensor pos = at::cat(pos_masks, 0).nonzero().squeeze(1);
  const at::Tensor neg = at::cat(neg_masks, 0).nonzero().squeeze(1);
  const at::Tensor sampled = at::cat({pos, neg}, 0);

  const at::Tensor deltas = predictions.deltas.reshape({-1, 4});
  const at::Tensor box_loss = at::smooth_l1_loss(deltas.index_select(0, pos), at::cat(targets, 0).index_select(0, pos),
                                                 at::Reduction::Sum, kSmoothL1Beta)
                                  .div(sampled.numel());
  const at::Tensor objectness_loss = at::binary_cross_entropy_with_logits(
      predictions.objectness.reshape({-1}).index_select(0, sampled), at::cat(labels, 0).index_select(0, sampled));
  return {{"loss_objectness", objectness_loss}, {"loss_rpn_box_reg", box_loss}};
}

RPNOutput RegionProposalNetworkImpl::forward(const ImageSizes& sizes, const std::vector<at::Tensor>& features,
                                             const std::optional<std::vector<at::Tensor>>& gt_boxes) {
  check_features(features, sizes, anchor_generator_.num_feature_maps());
  TORCH_CHECK(!is_training() || gt_boxes.has_value(), "RegionProposalNetwork: training mode needs gt_boxes");
  const int64_t num_images = features[0].size(0);

  const RPNPredictions predictions = predict(features);
  const at::Tensor anchors = this->anchors(sizes, features);
  // Every image has the same anchors; the deltas are detached because proposals are
  // treated as constants by the second stage.
  const at::Tensor proposals =
      box_coder_.decode(predictions.deltas.detach().reshape({-1, 4}), std::vector<at::Tensor>(num_images, anchors))
          .view({num_images, -1, 4});

  RPNOutput out;
  std::tie(out.boxes, out.scores) =
      filter_proposals(proposals, predictions.objectness, sizes.images, predictions.anchors_per_map);
  if (is_training()) out.losses = compute_loss(predictions, anchors, *gt_boxes);
  return out;
}

}  // namespace psearch::modeling
