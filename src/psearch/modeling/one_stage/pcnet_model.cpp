#include "psearch/modeling/one_stage/pcnet_model.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <stdexcept>

#include "psearch/boxes/box_ops.h"
#include "psearch/checkpoint/state_dict.h"
#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/backbone/backbone_config.h"
#include "psearch/modeling/pretrained_weights.h"
#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/layers/normalize.h"
#include "psearch/modeling/losses/pcnet_losses.h"
#include "psearch/modeling/torchvision_files.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

/// Level index of every anchor [T] from the per-level anchor counts.
at::Tensor anchor_levels(const std::vector<int64_t>& anchors_per_level, const at::TensorOptions& options) {
  std::vector<at::Tensor> parts;
  for (size_t l = 0; l < anchors_per_level.size(); ++l)
    parts.push_back(at::full({anchors_per_level[l]}, static_cast<int64_t>(l), options.dtype(at::kLong)));
  return at::cat(parts);
}

/// Positives of one training image.
struct Positives {
  at::Tensor anchors;  ///< int64 [n] anchor indices
  at::Tensor boxes;    ///< [n, 4] matched ground-truth boxes (batch pixels)
  at::Tensor pids;     ///< int64 [n]
};

Positives positives(const at::Tensor& matched, const at::Tensor& gt_boxes, const at::Tensor& pids) {
  const at::Tensor idx = at::where(matched >= 0)[0];
  const at::Tensor gt = matched.index_select(0, idx);
  return {idx, gt_boxes.index_select(0, gt), pids.to(gt.device()).index_select(0, gt)};
}

}  // namespace

const std::vector<std::string>& pcnet_loss_names() {
  static const std::vector<std::string> names = {"loss_cls", "loss_box_reg", "loss_reid", "loss_dist",
                                                 "loss_triplet"};
  return names;
}

DenseDetectionOptions pcnet_detection_options(const config::Config& c) {
  const config::OneStageConfig& o = c.model.one_stage;
  BoxCoderWeights weights{};
  std::copy_n(o.box_coder_weights.begin(), 4, weights.begin());
  return DenseDetectionOptions()
      .anchor_sizes(o.anchor_sizes)
      .aspect_ratios(o.aspect_ratios)
      .fg_iou_thresh(o.fg_iou_thresh)
      .bg_iou_thresh(o.bg_iou_thresh)
      .box_coder_weights(weights)
      .focal_alpha(o.focal_alpha)
      .focal_gamma(o.focal_gamma)
      .box_loss(BoxLoss::kSmoothL1)
      .smooth_l1_beta(o.smooth_l1_beta)
      .loss_norm(DenseLossNorm::kPerBatch)
      .score_thresh(c.inference.score_thresh)
      .topk_candidates(o.pre_nms_top_n)
      .nms_thresh(c.inference.nms_thresh)
      .detections_per_img(c.inference.detections_per_img);
}

PCNetModelImpl::PCNetModelImpl(const config::Config& config, int64_t num_pids)
    : config_(config),
      detector_(pcnet_detection_options(config)),
      train_transform_(image_transform_options_from_config(config.train)
                           .mean(config.model.pixel_mean)
                           .std(config.model.pixel_std)),
      test_transform_(image_transform_options_from_config(config.inference)
                          .mean(config.model.pixel_mean)
                          .std(config.model.pixel_std)) {
  const config::ModelConfig& m = config.model;
  const config::OneStageConfig& o = m.one_stage;
  const int64_t pids = m.oim.num_pids > 0 ? m.oim.num_pids : num_pids;
  if (pids <= 0)
    throw std::invalid_argument("the OIM lookup table needs at least one identity (model.oim.num_pids, or labeled "
                                "persons in the training split)");
  BackboneWithFPNOptions trunk;
  trunk.fpn(FPNOptions().p6_source(o.p6_from == "c5" ? P6Source::kC5 : P6Source::kP5));
  if (m.backbone.arch == "mobilenet_v2")
    trunk.use_mobilenet_v2(true).mobilenet(mobilenet_v2_options(m.backbone));
  else
    trunk.resnet(resnet_options(m.backbone));
  backbone_ = register_module("backbone", BackboneWithFPN(trunk));
  strides_ = backbone_->strides();
  PCNetHeadOptions head;
  head.in_channels = backbone_->out_channels();
  head.reid_channels = m.embedding_dim;
  head.head_channels = o.head_channels;
  head.num_convs = o.num_convs;
  head.share_towers = o.share_towers;
  head.num_levels = static_cast<int64_t>(strides_.size());
  head.anchors_per_cell = detector_.anchors_per_cell();
  head.cpp = o.reid_features == "cpp";
  head.zero_offsets = o.offset_init == "zero";
  head.serialized = o.reid_branch == "serialized";
  head_ = register_module("head", PCNetHead(head));
  if (o.csa) csa_ = register_module("csa", CrossScaleAggregation(m.embedding_dim, head.num_levels, o.csa_logit_clamp));
  reid_bn_ = register_module("reid_bn", BatchNorm(m.embedding_dim));
  point_bn_ = register_module("point_bn", BatchNorm(m.embedding_dim));
  reid_loss_ = register_module("reid_loss", OIMLoss(OIMLossOptions(pids)
                                                        .num_features(m.embedding_dim)
                                                        .num_cq_size(m.oim.queue_size)
                                                        .oim_momentum(m.oim.momentum)
                                                        .oim_scalar(m.oim.scalar)));
}

DensePredictions PCNetModelImpl::predictions(const PCNetHeadOutput& head) const {
  return {head.cls_logits, head.box_deltas, head.anchors_per_level};
}

PCNetForward PCNetModelImpl::run(const std::vector<at::Tensor>& images, const std::vector<at::Tensor>& boxes,
                                 const ImageTransform& transform) {
  PCNetForward f;
  f.batch = transform(images, boxes);
  const std::vector<at::Tensor> pyramid = backbone_->forward(f.batch.images);
  f.head = head_->forward(pyramid);
  f.anchors = detector_.anchors(f.batch.sizes, pyramid);
  return f;
}

at::Tensor PCNetModelImpl::aggregate(const PCNetForward& f, int64_t image, const at::Tensor& point_features,
                                     const at::Tensor& boxes) {
  if (!csa_) return point_features;
  return csa_->forward(point_features, boxes, f.cells(image, strides_));
}

at::Tensor PCNetModelImpl::embeddings(const at::Tensor& x) {
  // A single positive in a batch, where torch's BatchNorm1d would refuse, is normalised
  // with the running statistics (layers/batch_norm.h).
  return l2_normalize(reid_bn_->forward(x));
}

std::map<std::string, at::Tensor> PCNetModelImpl::forward_train(const std::vector<at::Tensor>& images,
                                                                const std::vector<TrainingTarget>& targets) {
  TORCH_CHECK(is_training(), "PCNetModel::forward_train needs training mode (call train())");
  TORCH_CHECK(images.size() == targets.size() && !images.empty(), "forward_train: ", images.size(), " images and ",
              targets.size(), " targets");
  std::vector<at::Tensor> gt_boxes;
  for (const auto& t : targets) {
    TORCH_CHECK(t.boxes.dim() == 2 && t.boxes.size(1) == 4 && t.pids.numel() == t.boxes.size(0),
                "forward_train: a target needs boxes [G, 4] and pids [G]");
    gt_boxes.push_back(t.boxes);
  }
  const PCNetForward f = run(images, gt_boxes, train_transform_);
  const std::vector<at::Tensor>& boxes = f.batch.boxes;
  const std::vector<at::Tensor> matched = detector_.match(f.anchors, boxes);
  std::vector<at::Tensor> labels;
  for (const auto& b : boxes) labels.push_back(at::zeros({b.size(0)}, b.options().dtype(at::kLong)));
  std::map<std::string, at::Tensor> losses = detector_.losses(predictions(f.head), f.anchors, matched, boxes, labels);

  const at::Tensor levels = anchor_levels(f.head.anchors_per_level, f.anchors.options());
  const at::Tensor level_strides = at::tensor(strides_, f.anchors.options().dtype(at::kLong));
  std::vector<at::Tensor> csa, point, pids, dist_offsets, dist_strides, dist_heights;
  for (size_t i = 0; i < images.size(); ++i) {
    const Positives p = positives(matched[i], boxes[i], targets[i].pids);
    const at::Tensor f_point = f.head.reid[static_cast<int64_t>(i)].index_select(0, p.anchors);
    csa.push_back(aggregate(f, static_cast<int64_t>(i), f_point, p.boxes));
    point.push_back(f_point);
    pids.push_back(p.pids);
    if (f.head.offsets.defined()) {
      dist_offsets.push_back(f.head.offsets[static_cast<int64_t>(i)].index_select(0, p.anchors));
      dist_strides.push_back(level_strides.index_select(0, levels.index_select(0, p.anchors)));
      dist_heights.push_back(p.boxes.select(1, 3) - p.boxes.select(1, 1));
    }
  }
  const at::Tensor all_pids = at::cat(pids);
  const int64_t n = all_pids.numel();
  const double norm = static_cast<double>(std::max<int64_t>(1, n));
  const at::Tensor reid = embeddings(at::cat(csa));
  losses["loss_reid"] = reid_loss_->forward(reid, all_pids);

  const at::Tensor zero = at::scalar_tensor(0.0, f.anchors.options());
  losses["loss_dist"] = dist_offsets.empty()
                            ? zero
                            : distance_loss_sum(at::cat(dist_offsets), at::cat(dist_strides), at::cat(dist_heights),
                                                config_.model.one_stage.distance_sets) /
                                  norm;
  if (n >= 2) {
    const at::Tensor point_all = at::cat(point);
    const at::Tensor point_emb = l2_normalize(point_bn_->forward(point_all));
    losses["loss_triplet"] = triplet_loss_sum(reid, point_emb, all_pids, config_.model.one_stage.triplet_margin,
                                              config_.model.one_stage.triplet == "official") /
                             norm;
  } else {
    losses["loss_triplet"] = zero;
  }
  losses["loss"] = weighted_total(losses, pcnet_loss_names(), config_.train.loss_weights);
  return losses;
}

std::vector<Detections> PCNetModelImpl::detect(const std::vector<at::Tensor>& images) {
  TORCH_CHECK(!is_training(), "PCNetModel::detect needs evaluation mode (call eval())");
  const PCNetForward f = run(images, {}, test_transform_);
  const DensePredictions p = predictions(f.head);
  const double aggregation_iou = config_.model.one_stage.gallery_aggregation_iou;
  std::vector<at::Tensor> kept_boxes;
  std::vector<Detections> out;
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t image = static_cast<int64_t>(i);
    const DenseCandidates c = detector_.detect(p, f.anchors, image, f.batch.sizes.images[i]);
    const at::Tensor boxes = c.all.boxes.index_select(0, c.keep);
    const at::Tensor reid = f.head.reid[image];
    at::Tensor point = reid.index_select(0, c.all.anchor_index.index_select(0, c.keep));
    if (aggregation_iou > 0) {
      // Mean point feature of the candidates overlapping each detection (itself included).
      const at::Tensor overlap = (boxes::box_iou(boxes, c.all.boxes) >= aggregation_iou).to(reid.dtype());
      point = overlap.matmul(reid.index_select(0, c.all.anchor_index)) / overlap.sum(1, true).clamp_min(1);
    }
    const at::Tensor features = embeddings(aggregate(f, image, point, boxes));
    kept_boxes.push_back(boxes);
    out.push_back({at::Tensor(), c.all.scores.index_select(0, c.keep), features});
  }
  const std::vector<at::Tensor> original =
      test_transform_.postprocess(kept_boxes, f.batch.sizes.images, f.batch.original_sizes);
  for (size_t i = 0; i < out.size(); ++i) out[i].boxes = original[i];
  return out;
}

std::vector<at::Tensor> PCNetModelImpl::embed(const std::vector<at::Tensor>& images,
                                              const std::vector<at::Tensor>& boxes) {
  TORCH_CHECK(!is_training(), "PCNetModel::embed needs evaluation mode (call eval())");
  TORCH_CHECK(images.size() == boxes.size(), "embed: one box list per image");
  const PCNetForward f = run(images, boxes, test_transform_);
  const DensePredictions p = predictions(f.head);
  const config::OneStageConfig& o = config_.model.one_stage;
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t image = static_cast<int64_t>(i);
    const at::Tensor query_boxes = f.batch.boxes[i];
    const at::Tensor reid = f.head.reid[image];  // [T, D]
    if (query_boxes.size(0) == 0) {
      out.push_back(at::zeros({0, reid.size(1)}, reid.options()));
      continue;
    }
    const at::Tensor decoded = detector_.decode_all(p, f.anchors, image, f.batch.sizes.images[i]);
    const at::Tensor iou = boxes::box_iou(query_boxes.to(decoded.dtype()), decoded);  // [K, T]
    at::Tensor point;
    if (o.query_feature == "best_anchor") {
      point = reid.index_select(0, iou.argmax(1));
    } else {
      // The anchors of the top-k overlaps with IoU >= the threshold, the best one always.
      const int64_t k = std::min<int64_t>(o.query_overlap_topk, iou.size(1));
      auto [values, idx] = at::topk(iou, k, 1);  // [K, k], best first
      at::Tensor use = (values >= o.query_overlap_iou).to(reid.dtype());
      use = at::cat({at::ones_like(use.narrow(1, 0, 1)), use.narrow(1, 1, k - 1)}, 1);  // out of place: ONNX export
      point = (use.unsqueeze(2) * reid.index_select(0, idx.reshape(-1)).view({-1, k, reid.size(1)})).sum(1) /
              use.sum(1, true);
    }
    out.push_back(embeddings(aggregate(f, image, point, query_boxes.to(reid.dtype()))));
  }
  return out;
}

CppPoints PCNetModelImpl::sampling_points(const at::Tensor& image) {
  TORCH_CHECK(!is_training(), "PCNetModel::sampling_points needs evaluation mode (call eval())");
  if (!head_->options().cpp)
    throw std::invalid_argument("this model has no Contextual Points Pooling (model.one_stage.reid_features: conv)");
  const PCNetForward f = run({image}, {}, test_transform_);
  const DenseCandidates c = detector_.detect(predictions(f.head), f.anchors, 0, f.batch.sizes.images[0]);
  const at::Tensor anchor = c.all.anchor_index.index_select(0, c.keep);
  const int64_t a = detector_.anchors_per_cell();
  // Level, row and column of each kept anchor.
  std::vector<int64_t> level_of, row_of, col_of;
  const at::Tensor anchor_cpu = anchor.cpu();
  for (int64_t i = 0; i < anchor_cpu.size(0); ++i) {
    int64_t t = anchor_cpu[i].item<int64_t>(), l = 0;
    while (t >= f.head.anchors_per_level[l]) t -= f.head.anchors_per_level[l++];
    const int64_t width = f.head.cell_features[l].size(3), cell = t / a;
    level_of.push_back(l);
    row_of.push_back(cell / width);
    col_of.push_back(cell % width);
  }
  const auto opts = f.head.offsets.options();
  const at::Tensor offsets = f.head.offsets[0].index_select(0, anchor).view({-1, 9, 2});  // (dy, dx)
  at::Tensor stride = at::zeros({anchor.size(0)}, opts), row = at::zeros_like(stride), col = at::zeros_like(stride);
  for (size_t i = 0; i < level_of.size(); ++i) {
    stride[static_cast<int64_t>(i)] = static_cast<double>(strides_[level_of[i]]);
    row[static_cast<int64_t>(i)] = static_cast<double>(row_of[i]);
    col[static_cast<int64_t>(i)] = static_cast<double>(col_of[i]);
  }
  const at::Tensor taps = at::arange(9, opts);
  const at::Tensor tap_row = taps.div(3, "floor") - 1, tap_col = taps.remainder(3) - 1;
  const at::Tensor s = stride.unsqueeze(1);
  const at::Tensor y = (row.unsqueeze(1) + tap_row + offsets.select(2, 0)) * s + s / 2;
  const at::Tensor x = (col.unsqueeze(1) + tap_col + offsets.select(2, 1)) * s + s / 2;
  // Back to the input image's pixels, as the boxes (transform.postprocess scales per axis).
  const auto& resized = f.batch.sizes.images[0];
  const auto& original = f.batch.original_sizes[0];
  const double sy = static_cast<double>(original[0]) / resized[0], sx = static_cast<double>(original[1]) / resized[1];
  CppPoints out;
  out.boxes = test_transform_.postprocess({c.all.boxes.index_select(0, c.keep)}, f.batch.sizes.images,
                                          f.batch.original_sizes)[0];
  out.scores = c.all.scores.index_select(0, c.keep);
  out.points = at::stack({x * sx, y * sy}, 2);
  return out;
}

void PCNetModelImpl::load_backbone_weights(const std::string& given) {
  const std::string path = resolve_backbone_weights(given, static_cast<bool>(backbone_->mobilenet_body()));
  checkpoint::TensorMap state = checkpoint::load_tensors(path);
  if (torchvision_kind(state) == TorchvisionKind::kRetinaNet) {
    drop_bn_counters(state);
    checkpoint::TensorMap trunk;
    for (auto& [key, value] : state)
      if (key.rfind("backbone.", 0) == 0) trunk[key] = value;
    const checkpoint::LoadReport report =
        checkpoint::load_state_dict(*this, trunk, checkpoint::Strictness::kNonStrict, path);
    const bool trunk_missing = std::any_of(report.missing.begin(), report.missing.end(),
                                           [](const std::string& k) { return k.rfind("backbone.", 0) == 0; });
    if (trunk_missing || !report.unexpected.empty() || !report.mismatched.empty())
      throw std::runtime_error(path + ": the RetinaNet trunk does not fit this model's ResNet + FPN" +
                               report.describe());
    return;
  }
  if (backbone_->mobilenet_body())
    load_torchvision_mobilenet_v2(*backbone_->mobilenet_body(), path, checkpoint::Strictness::kStrict);
  else
    load_torchvision_resnet(*backbone_->body(), path, checkpoint::Strictness::kStrict);
}

namespace {

std::vector<ModelType> one_stage_types() {
  auto build = [](const config::Config& c, int64_t num_pids) -> PersonSearchModel {
    return std::make_shared<PCNetModelImpl>(c, num_pids);
  };
  return {{"pcnet", "one_stage",
           "PCNet: one-stage RetinaNet-FPN, Contextual Points Pooling + Cross Scale Aggregation (PCNet-dagger, light: "
           "configs)",
           pcnet_loss_names(), build}};
}

}  // namespace

PSEARCH_REGISTER_MODEL_TYPES(one_stage_types)

}  // namespace psearch::modeling
