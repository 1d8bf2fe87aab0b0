#include "psearch/modeling/one_stage/dense_detection.h"

#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/smooth_l1_loss.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <algorithm>

#include "psearch/boxes/box_ops.h"
#include "psearch/ops/ops.h"

namespace psearch::modeling {
namespace {

int64_t common_anchors_per_cell(const boxes::AnchorGenerator& generator) {
  const std::vector<int64_t> per_cell = generator.num_anchors_per_location();
  for (const int64_t n : per_cell)
    if (n != per_cell.front())
      throw std::invalid_argument(
          "one-stage detector: one head serves every pyramid level, so each level needs the same number of anchors "
          "per cell (anchor sizes x aspect ratios)");
  return per_cell.front();
}

/// Sum of the box-code loss of one image's positives.
at::Tensor box_loss_sum(const at::Tensor& deltas, const at::Tensor& targets, BoxLoss kind, double beta) {
  if (kind == BoxLoss::kL1) return (deltas - targets).abs().sum();
  return at::smooth_l1_loss(deltas, targets, at::Reduction::Sum, beta);
}

}  // namespace

DenseDetector::DenseDetector(const DenseDetectionOptions& options)
    : options_(options),
      anchor_generator_(options.anchor_sizes(), options.aspect_ratios()),
      box_coder_(options.box_coder_weights()),
      matcher_(options.fg_iou_thresh(), options.bg_iou_thresh(), /*allow_low_quality_matches=*/true),
      anchors_per_cell_(common_anchors_per_cell(anchor_generator_)) {}

at::Tensor DenseDetector::anchors(const ImageSizes& sizes, const std::vector<at::Tensor>& features) const {
  TORCH_CHECK(static_cast<int64_t>(features.size()) == anchor_generator_.num_feature_maps(),
              "one-stage detector: anchors are configured for ", anchor_generator_.num_feature_maps(),
              " pyramid levels, got ", features.size());
  std::vector<std::array<int64_t, 2>> map_sizes;
  for (const auto& f : features) map_sizes.push_back({f.size(2), f.size(3)});
  return anchor_generator_(sizes.batch, map_sizes, features[0].scalar_type(), features[0].device());
}

std::vector<at::Tensor> DenseDetector::match(const at::Tensor& anchors, const std::vector<at::Tensor>& gt_boxes) const {
  std::vector<at::Tensor> matched;
  for (const auto& gt : gt_boxes) {
    if (gt.size(0) == 0) {
      matched.push_back(at::full({anchors.size(0)}, boxes::Matcher::kBelowLowThreshold,
                                 anchors.options().dtype(at::kLong)));
    } else {
      matched.push_back(matcher_(boxes::box_iou(gt.to(anchors.dtype()), anchors)));
    }
  }
  return matched;
}

std::map<std::string, at::Tensor> DenseDetector::losses(const DensePredictions& p, const at::Tensor& anchors,
                                                        const std::vector<at::Tensor>& matched,
                                                        const std::vector<at::Tensor>& gt_boxes,
                                                        const std::vector<at::Tensor>& gt_labels) const {
  const int64_t num_images = p.cls_logits.size(0);
  TORCH_CHECK(static_cast<int64_t>(matched.size()) == num_images && gt_boxes.size() == matched.size() &&
                  gt_labels.size() == matched.size(),
              "one-stage detector: one assignment, box list and label list per image");
  std::vector<at::Tensor> cls_terms, box_terms;
  int64_t total_positives = 0;
  for (int64_t i = 0; i < num_images; ++i) {
    const at::Tensor logits = p.cls_logits[i];  // [T, K]
    const at::Tensor fg = at::where(matched[i] >= 0)[0];
    const int64_t num_fg = fg.numel();
    total_positives += num_fg;
    const at::Tensor fg_gt = matched[i].index_select(0, fg);

    at::Tensor target = at::zeros_like(logits);
    if (num_fg > 0) target.index_put_({fg, gt_labels[i].to(fg.device()).index_select(0, fg_gt)}, at::Scalar(1.0));
    const at::Tensor valid = at::where(matched[i] != boxes::Matcher::kBetweenThresholds)[0];
    const at::Tensor focal =
        sigmoid_focal_loss(logits.index_select(0, valid), target.index_select(0, valid), options_.focal_alpha(),
                           options_.focal_gamma())
            .sum();

    const at::Tensor targets = box_coder_.encode_single(gt_boxes[i].to(anchors.dtype()).index_select(0, fg_gt),
                                                        anchors.index_select(0, fg));
    const at::Tensor box = box_loss_sum(p.box_deltas[i].index_select(0, fg), targets, options_.box_loss(),
                                        options_.smooth_l1_beta());
    if (options_.loss_norm() == DenseLossNorm::kPerImage) {
      const double norm = static_cast<double>(std::max<int64_t>(1, num_fg));
      cls_terms.push_back(focal / norm);
      box_terms.push_back(box / norm);
    } else {
      cls_terms.push_back(focal);
      box_terms.push_back(box);
    }
  }
  at::Tensor cls = cls_terms.front(), box = box_terms.front();
  for (size_t i = 1; i < cls_terms.size(); ++i) {
    cls = cls + cls_terms[i];
    box = box + box_terms[i];
  }
  if (options_.loss_norm() == DenseLossNorm::kPerImage) {
    cls = cls / static_cast<double>(num_images);
    box = box / static_cast<double>(num_images);
  } else {
    const double norm = static_cast<double>(std::max<int64_t>(1, total_positives));
    cls = cls / norm;
    box = box / norm;
  }
  return {{"loss_cls", cls}, {"loss_box_reg", box}};
}

DenseCandidates DenseDetector::detect(const DensePredictions& p, const at::Tensor& anchors, int64_t image,
                                      std::array<int64_t, 2> image_size) const {
  const at::Tensor logits = p.cls_logits[image].detach();  // [T, K]
  const at::Tensor deltas = p.box_deltas[image].detach();  // [T, 4]
  const int64_t num_classes = logits.size(1);
  // torchvision thresholds each level first and then takes its top-k; the top-k of each
  // level, thresholded after, is the same set in the same order. Its k depends on the
  // level's size only, not on the data (so tracing does not freeze it), and thresholding
  // all levels at once waits for the device once per image instead of once per level.
  std::vector<at::Tensor> top_scores_l, top_flat_l;
  int64_t offset = 0;
  for (const int64_t n : p.anchors_per_level) {
    const at::Tensor scores = at::sigmoid(logits.narrow(0, offset, n)).flatten();
    const int64_t k = std::min(options_.topk_candidates(), scores.numel());
    auto [top_scores, top_flat] = at::topk(scores, k);
    top_scores_l.push_back(top_scores);
    top_flat_l.push_back(top_flat + offset * num_classes);  // into the image's [T * K] scores
    offset += n;
  }
  const at::Tensor top_scores = at::cat(top_scores_l), top_flat = at::cat(top_flat_l);
  const at::Tensor above = at::where(top_scores > options_.score_thresh())[0];
  const at::Tensor flat = top_flat.index_select(0, above);
  const at::Tensor anchor_idx = flat.div(num_classes, "floor");
  const at::Tensor decoded =
      box_coder_.decode_single(deltas.index_select(0, anchor_idx), anchors.index_select(0, anchor_idx));
  DenseCandidates out;
  out.all = {boxes::clip_boxes_to_image(decoded, image_size), top_scores.index_select(0, above),
             flat.remainder(num_classes), anchor_idx};
  out.keep = ops::batched_nms(out.all.boxes, out.all.scores, out.all.labels, options_.nms_thresh())
                 .slice(0, 0, options_.detections_per_img());
  return out;
}

at::Tensor DenseDetector::decode_all(const DensePredictions& p, const at::Tensor& anchors, int64_t image,
                                     std::array<int64_t, 2> image_size) const {
  return boxes::clip_boxes_to_image(box_coder_.decode_single(p.box_deltas[image].detach(), anchors), image_size);
}

at::Tensor sigmoid_focal_loss(const at::Tensor& logits, const at::Tensor& targets, double alpha, double gamma) {
  const at::Tensor p = at::sigmoid(logits);
  const at::Tensor ce = at::binary_cross_entropy_with_logits(logits, targets, {}, {}, at::Reduction::None);
  const at::Tensor p_t = p * targets + (1 - p) * (1 - targets);
  at::Tensor loss = ce * at::pow(1 - p_t, gamma);
  if (alpha >= 0) loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss;
  return loss;
}

}  // namespace psearch::modeling
