#include "psearch/modeling/two_stage/roi_box_head.h"

#include <ATen/TensorIndexing.h>
#include <ATen/core/Reduction.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/smooth_l1_loss.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <tuple>

#include "psearch/boxes/box_ops.h"
#include "psearch/config/config.h"
#include "psearch/ops/ops.h"
#include "psearch/util/traceable.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

/// Smooth L1 transition point of the box loss (torchvision, after Detectron).
constexpr double kSmoothL1Beta = 1.0 / 9.0;
/// postprocess_detections drops boxes narrower or lower than this (torchvision's constant).
constexpr double kMinDetectionSize = 1e-2;

std::array<double, 4> coder_weights(const RoIBoxHeadOptions& o) {
  TORCH_CHECK(o.bbox_reg_weights().size() == 4, "RoIBoxHead: bbox_reg_weights needs 4 values, got ",
              o.bbox_reg_weights().size());
  return {o.bbox_reg_weights()[0], o.bbox_reg_weights()[1], o.bbox_reg_weights()[2], o.bbox_reg_weights()[3]};
}

}  // namespace

RoIBoxHeadOptions roi_box_head_options_from_config(const config::RoiHeadsConfig& c) {
  return RoIBoxHeadOptions()
      .fg_iou_thresh(c.fg_iou_thresh)
      .bg_iou_thresh(c.bg_iou_thresh_hi)
      .bg_iou_thresh_lo(c.bg_iou_thresh_lo)
      .batch_size_per_image(c.batch_size_per_image)
      .positive_fraction(c.positive_fraction)
      .bbox_reg_weights(c.bbox_reg_weights)
      .pooler_resolution(c.pooler_resolution)
      .sampling_ratio(c.sampling_ratio)
      .bbox_reg_bn(c.bbox_reg_bn)
      .feature_pool(c.feature_pool);
}

RoISamples select_training_samples(const std::vector<at::Tensor>& proposals, const std::vector<at::Tensor>& gt_boxes,
                                   const std::vector<at::Tensor>& gt_labels, const RoIBoxHeadOptions& options) {
  TORCH_CHECK(proposals.size() == gt_boxes.size() && proposals.size() == gt_labels.size(),
              "select_training_samples: ", proposals.size(), " proposal lists, ", gt_boxes.size(), " gt box lists, ",
              gt_labels.size(), " gt label lists");
  const boxes::Matcher matcher(options.fg_iou_thresh(), options.bg_iou_thresh(), /*allow_low_quality_matches=*/false);
  const boxes::BalancedPositiveNegativeSampler sampler(options.batch_size_per_image(), options.positive_fraction());
  const boxes::BoxCoder coder(coder_weights(options));

  // Label all proposals of every image first, then sample: the sampler draws image after
  // image from one random stream, as torchvision's subsample does.
  std::vector<at::Tensor> all_props, all_matched, all_labels;
  for (size_t i = 0; i < proposals.size(); ++i) {
    boxes::check_boxes_2d(proposals[i], "select_training_samples", "proposals");
    boxes::check_boxes_2d(gt_boxes[i], "select_training_samples", "gt_boxes");
    const at::Tensor gt = gt_boxes[i].to(proposals[i].scalar_type());
    // gt boxes join the proposals so that every person has at least one perfect sample.
    const at::Tensor props = at::cat({proposals[i], gt});
    const int64_t n = props.size(0);
    at::Tensor matched, labels;
    if (gt.size(0) == 0) {
      // The matcher cannot handle an empty image: everything is background.
      matched = at::zeros({n}, props.options().dtype(at::kLong));
      labels = at::zeros({n}, props.options().dtype(at::kLong));
    } else {
      TORCH_CHECK(gt_labels[i].numel() == gt.size(0), "select_training_samples: image ", i, " has ", gt.size(0),
                  " gt boxes but ", gt_labels[i].numel(), " labels");
      const at::Tensor iou = boxes::box_iou(gt, props);
      const at::Tensor raw = matcher(iou);
      matched = raw.clamp_min(0);
      labels = gt_labels[i].to(props.device()).index_select(0, matched).to(at::kLong);
      labels.masked_fill_(raw == boxes::Matcher::kBelowLowThreshold, 0);
      labels.masked_fill_(raw == boxes::Matcher::kBetweenThresholds, -1);
      if (options.bg_iou_thresh_lo() > 0) {
        // Proposals far from every person are too easy to teach the classifier anything.
        const at::Tensor best = std::get<0>(iou.max(0));
        labels.masked_fill_((labels == 0) & (best < options.bg_iou_thresh_lo()), -1);
      }
    }
    all_props.push_back(props);
    all_matched.push_back(matched);
    all_labels.push_back(labels);
  }

  auto [pos, neg] = sampler(all_labels);
  RoISamples out;
  std::vector<at::Tensor> matched_gt;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const at::Tensor keep = (pos[i].to(at::kBool) | neg[i].to(at::kBool)).nonzero().view(-1);
    out.proposals.push_back(all_props[i].index_select(0, keep));
    out.labels.push_back(all_labels[i].index_select(0, keep));
    out.matched_idxs.push_back(all_matched[i].index_select(0, keep));
    at::Tensor gt = gt_boxes[i].to(all_props[i].scalar_type());
    // A zero box stands in for the missing ground truth (targets of negatives are unused).
    if (gt.size(0) == 0) gt = at::zeros({1, 4}, all_props[i].options());
    matched_gt.push_back(gt.index_select(0, out.matched_idxs.back()));
  }
  out.regression_targets = coder.encode(matched_gt, out.proposals);
  return out;
}

at::Tensor fastrcnn_box_loss(const at::Tensor& box_regression, const at::Tensor& labels,
                             const at::Tensor& regression_targets) {
  TORCH_CHECK(labels.dim() == 1, "fastrcnn_box_loss: labels must be [S]");
  const int64_t n = labels.size(0);
  TORCH_CHECK(box_regression.dim() == 2 && box_regression.size(0) == n && box_regression.size(1) % 4 == 0,
              "fastrcnn_loss: box_regression must be [S, 4C]");
  TORCH_CHECK(regression_targets.dim() == 2 && regression_targets.size(0) == n && regression_targets.size(1) == 4,
              "fastrcnn_loss: regression_targets must be [S, 4]");
  const at::Tensor pos = (labels > 0).nonzero().view(-1);
  const at::Tensor labels_pos = labels.index_select(0, pos);
  // Each positive is regressed with the deltas of its own class only.
  const at::Tensor deltas = box_regression.reshape({n, -1, 4}).index({pos, labels_pos});
  // A sum over no positives is exactly 0 and keeps the graph, so backward still runs.
  return at::smooth_l1_loss(deltas, regression_targets.index_select(0, pos), at::Reduction::Sum, kSmoothL1Beta) /
         static_cast<double>(std::max<int64_t>(n, 1));
}

std::map<std::string, at::Tensor> fastrcnn_loss(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                const at::Tensor& labels, const at::Tensor& regression_targets) {
  TORCH_CHECK(class_logits.dim() == 2 && labels.dim() == 1 && class_logits.size(0) == labels.size(0),
              "fastrcnn_loss: class_logits must be [S, C] and labels [S]");
  return {{"loss_classifier", at::cross_entropy_loss(class_logits, labels)},
          {"loss_box_reg", fastrcnn_box_loss(box_regression, labels, regression_targets)}};
}

std::vector<RoIDetections> postprocess_detections(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                  const std::vector<at::Tensor>& proposals,
                                                  const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                  const RoIBoxHeadOptions& options) {
  TORCH_CHECK(class_logits.dim() == 2, "postprocess_detections: class_logits must be [N, C]");
  return postprocess_detections_from_probs(at::softmax(class_logits, -1), box_regression, proposals, image_sizes,
                                           options);
}

std::vector<RoIDetections> postprocess_detections_from_probs(const at::Tensor& class_probs,
                                                             const at::Tensor& box_regression,
                                                             const std::vector<at::Tensor>& proposals,
                                                             const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                             const RoIBoxHeadOptions& options) {
  TORCH_CHECK(proposals.size() == image_sizes.size(), "postprocess_detections: ", proposals.size(),
              " proposal lists but ", image_sizes.size(), " image sizes");
  TORCH_CHECK(class_probs.dim() == 2, "postprocess_detections: class_probs must be [N, C]");
  const int64_t c = class_probs.size(1);
  const boxes::BoxCoder coder(coder_weights(options));
  const at::Tensor pred_boxes = coder.decode(box_regression, proposals).reshape({-1, c, 4});
  const at::Tensor& pred_scores = class_probs;

  std::vector<int64_t> counts;
  for (const auto& p : proposals) counts.push_back(p.size(0));
  const std::vector<at::Tensor> boxes_per_image = util::split_rows(pred_boxes, counts);
  const std::vector<at::Tensor> scores_per_image = util::split_rows(pred_scores, counts);
  std::vector<RoIDetections> out;
  for (size_t i = 0; i < proposals.size(); ++i) {
    at::Tensor b = boxes::clip_boxes_to_image(boxes_per_image[i], image_sizes[i]);
    at::Tensor s = scores_per_image[i];
    // Flattened [n, C-1] (proposal-major) after dropping background, as torchvision.
    const auto lopts = class_probs.options().dtype(at::kLong);
    at::Tensor labels = at::arange(c, lopts).view({1, -1}).expand_as(s);
    at::Tensor prop = util::row_numbers(s).view({-1, 1}).expand_as(s);
    using at::indexing::Slice;
    b = b.index({Slice(), Slice(1)}).reshape({-1, 4});
    s = s.index({Slice(), Slice(1)}).reshape({-1});
    labels = labels.index({Slice(), Slice(1)}).reshape({-1});
    prop = prop.index({Slice(), Slice(1)}).reshape({-1});
    auto take = [&](const at::Tensor& idx) {
      b = b.index_select(0, idx);
      s = s.index_select(0, idx);
      labels = labels.index_select(0, idx);
      prop = prop.index_select(0, idx);
    };
    take((s > options.score_thresh()).nonzero().view(-1));
    take(boxes::remove_small_boxes(b, kMinDetectionSize));
    at::Tensor keep = ops::batched_nms(b, s, labels, options.nms_thresh());
    keep = keep.slice(0, 0, options.detections_per_img());
    take(keep);
    out.push_back({b, s, labels, prop});
  }
  return out;
}

RoIBoxHeadImpl::RoIBoxHeadImpl(nn::Sequential head, int64_t out_channels, const RoIBoxHeadOptions& options)
    : options_(options) {
  TORCH_CHECK(options.num_classes() >= 2, "RoIBoxHead: num_classes counts background, needs >= 2");
  TORCH_CHECK(options.feature_pool() == "avg" || options.feature_pool() == "max",
              "RoIBoxHead: feature_pool must be avg or max, got ", options.feature_pool());
  head_ = register_module("head", std::move(head));
  if (options.with_classifier())
    cls_score_ = register_module("cls_score", nn::Linear(out_channels, options.num_classes()));
  bbox_pred_ = register_module("bbox_pred", nn::Linear(out_channels, 4 * options.num_classes()));
  if (options.bbox_reg_bn()) {
    // The official CoordRegressor initialisation: small weights, so that the normalised
    // deltas start near 0.
    bbox_bn_ = register_module("bbox_bn", BatchNorm(4 * options.num_classes()));
    torch::NoGradGuard no_grad;
    bbox_pred_->weight.normal_(0, 0.01);
    bbox_pred_->bias.zero_();
    bbox_bn_->weight.normal_(0, 0.01);
    bbox_bn_->bias.zero_();
  }
}

at::Tensor RoIBoxHeadImpl::pool(const at::Tensor& features, const std::vector<at::Tensor>& proposals) const {
  TORCH_CHECK(features.dim() == 4 && features.size(0) == static_cast<int64_t>(proposals.size()),
              "RoIBoxHead: features must be [B, C, H, W] with one proposal list per image");
  std::vector<at::Tensor> rois;
  for (size_t i = 0; i < proposals.size(); ++i) {
    boxes::check_boxes_2d(proposals[i], "RoIBoxHead", "proposals");
    const at::Tensor p = proposals[i].to(features.scalar_type());
    rois.push_back(at::cat({at::full_like(p.narrow(1, 0, 1), static_cast<double>(i)), p}, 1));
  }
  const int64_t r = options_.pooler_resolution();
  return ops::roi_align(features, at::cat(rois), options_.spatial_scale(), r, r, options_.sampling_ratio(),
                        options_.aligned());
}

RoIBoxHeadOutput RoIBoxHeadImpl::forward(const at::Tensor& features, const std::vector<at::Tensor>& proposals) {
  RoIBoxHeadOutput out;
  out.pooled = pool(features, proposals);
  out.maps = head_->forward(out.pooled);
  out.features = options_.feature_pool() == "max" ? out.maps.amax({2, 3}) : out.maps.mean({2, 3});
  if (cls_score_) out.class_logits = cls_score_->forward(out.features);
  out.box_regression = bbox_pred_->forward(out.features);
  // BatchNorm1d needs more than one row in training; one RoI passes through unnormalised
  // there (only possible with a single proposal and no ground truth).
  if (bbox_bn_)  // one row in training: running statistics (layers/batch_norm.h)
    out.box_regression = bbox_bn_->forward(out.box_regression);
  return out;
}

}  // namespace psearch::modeling
