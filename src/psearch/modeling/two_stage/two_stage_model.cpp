#include "psearch/modeling/two_stage/two_stage_model.h"

#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>
#include <utility>

#include "psearch/boxes/box_ops.h"
#include "psearch/config/config.h"

namespace psearch::modeling {
namespace {

at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12); }

std::vector<int64_t> counts(const std::vector<at::Tensor>& boxes) {
  std::vector<int64_t> n;
  for (const auto& b : boxes) n.push_back(b.size(0));
  return n;
}

int64_t resnet_depth(const std::string& arch) {
  if (arch == "resnet18") return 18;
  if (arch == "resnet34") return 34;
  if (arch == "resnet50") return 50;
  throw std::invalid_argument("unknown backbone '" + arch + "'");
}

/// Identity label of every sampled RoI for OIM: the matched person's pid for persons,
/// kOimBackground for background.
at::Tensor roi_identities(const RoISamples& samples, const std::vector<TrainingTarget>& targets) {
  std::vector<at::Tensor> ids;
  for (size_t i = 0; i < targets.size(); ++i) {
    const at::Tensor& labels = samples.labels[i];
    const at::Tensor background = at::full_like(labels, kOimBackground);
    if (targets[i].pids.numel() == 0) {
      ids.push_back(background);
      continue;
    }
    const at::Tensor pids = targets[i].pids.to(labels.device()).index_select(0, samples.matched_idxs[i]);
    ids.push_back(at::where(labels > 0, pids, background));
  }
  return at::cat(ids);
}

/// NAE+: the ground-truth box whose intersection labels each RoI's pixels. A person RoI's is
/// the box it was matched to; a background RoI's is the box it overlaps most (the paper's
/// "its ground truth"; official code pairs background with box 0 of the image, see
/// docs/losses.md). Images without ground truth pair with an empty box (all-zero labels).
at::Tensor paired_gt_boxes(const std::vector<at::Tensor>& rois, const std::vector<at::Tensor>& gt_boxes) {
  std::vector<at::Tensor> paired;
  for (size_t i = 0; i < rois.size(); ++i) {
    if (gt_boxes[i].size(0) == 0) {
      paired.push_back(at::zeros_like(rois[i]));
      continue;
    }
    const at::Tensor best = at::argmax(boxes::box_iou(gt_boxes[i], rois[i]), 0);
    paired.push_back(gt_boxes[i].index_select(0, best));
  }
  return at::cat(paired);
}

}  // namespace

TwoStageHead parse_two_stage_head(const std::string& name) {
  if (name == "oim") return TwoStageHead::kOim;
  if (name == "nae") return TwoStageHead::kNae;
  if (name == "nae_plus") return TwoStageHead::kNaePlus;
  throw std::invalid_argument("unknown two-stage model type '" + name + "' (oim, nae or nae_plus)");
}

std::string two_stage_head_name(TwoStageHead head) {
  switch (head) {
    case TwoStageHead::kOim: return "oim";
    case TwoStageHead::kNae: return "nae";
    case TwoStageHead::kNaePlus: return "nae_plus";
  }
  return "?";
}

TwoStageOptions two_stage_options_from_config(const config::Config& c, int64_t num_pids) {
  const auto& m = c.model;
  TwoStageOptions o(m.oim.num_pids > 0 ? m.oim.num_pids : num_pids);
  o.head = parse_two_stage_head(m.type);
  o.backbone = ResNetOptions()
                   .depth(resnet_depth(m.backbone.arch))
                   .norm(m.backbone.norm == "frozen" ? NormKind::kFrozen : NormKind::kBatchNorm)
                   .freeze_at(m.backbone.freeze_at);
  o.rpn = rpn_options_from_config(m.rpn);
  o.roi_heads = roi_box_head_options_from_config(m.roi_heads)
                    .score_thresh(c.inference.score_thresh)
                    .nms_thresh(c.inference.nms_thresh)
                    .detections_per_img(c.inference.detections_per_img);
  o.embedding = EmbeddingHeadOptions()
                    .dim(m.embedding.dim)
                    .fuse_res4(m.embedding.fuse_res4)
                    .feature_pool(m.roi_heads.feature_pool);
  o.pixel_size = m.embedding.pixel_size;
  o.oim.num_features(m.embedding.dim)
      .num_cq_size(m.oim.queue_size)
      .oim_momentum(m.oim.momentum)
      .oim_scalar(m.oim.scalar);
  const auto& w = c.train.loss_weights;
  o.loss_weights = {w.rpn_objectness, w.rpn_box, w.box, w.detection, w.reid};
  o.train_transform = image_transform_options_from_config(c.train).mean(m.pixel_mean).std(m.pixel_std);
  o.test_transform = image_transform_options_from_config(c.inference).mean(m.pixel_mean).std(m.pixel_std);
  o.cws = c.inference.cws;
  return o;
}

TwoStageModelImpl::TwoStageModelImpl(const TwoStageOptions& options)
    : options_(options), train_transform_(options.train_transform), test_transform_(options.test_transform) {
  TORCH_CHECK(options.oim.num_pids() > 0, "TwoStageModel: the OIM lookup table needs at least one identity");
  options_.backbone.last_stage("C4");
  backbone_ = register_module("backbone", ResNet(options_.backbone));
  rpn_ = register_module("rpn", RegionProposalNetwork(backbone_->channels("C4"), options_.rpn));

  // conv5 (layer4) runs on RoIs, so it moves from the backbone to the RoI head.
  options_.roi_heads.with_classifier(options_.head == TwoStageHead::kOim);
  roi_heads_ = register_module("roi_heads",
                               RoIBoxHead(backbone_->layer(4), backbone_->channels("C5"), options_.roi_heads));
  backbone_->unregister_module("layer4");

  options_.embedding.res4_channels(backbone_->channels("C4"))
      .res5_channels(backbone_->channels("C5"))
      .pixel_wise(options_.head == TwoStageHead::kNaePlus);
  embedding_head_ = register_module("embedding_head", EmbeddingHead(options_.embedding));
  if (options_.head == TwoStageHead::kNae) nae_ = register_module("nae", NormAwareEmbedding());
  if (options_.head == TwoStageHead::kNaePlus) {
    // layer4 halves the RoIAlign grid (stride 2), so the per-pixel map is pooler / 2.
    TORCH_CHECK(options_.pixel_size * 2 == options_.roi_heads.pooler_resolution(),
                "NAE+: model.embedding.pixel_size (", options_.pixel_size,
                ") must be half of model.roi_heads.pooler_resolution (", options_.roi_heads.pooler_resolution(), ")");
    nae_plus_ = register_module("nae", PixelWiseNormAwareEmbedding());
  }
  options_.oim.num_features(options_.embedding.dim());
  reid_loss_ = register_module("reid_loss", OIMLoss(options_.oim));
}

TwoStageModelImpl::HeadOutput TwoStageModelImpl::run_heads(const at::Tensor& c4, const std::vector<at::Tensor>& rois) {
  const RoIBoxHeadOutput box = roi_heads_->forward(c4, rois);
  const at::Tensor x = embedding_head_->forward(box.pooled, box.maps);
  HeadOutput out;
  out.box_regression = box.box_regression;
  switch (options_.head) {
    case TwoStageHead::kOim: {
      out.class_logits = box.class_logits;
      out.scores = at::softmax(box.class_logits, 1).select(1, 1);
      out.query = l2_normalize(x);
      // Class-weighted similarity (CWS): a likely background box ranks low.
      out.gallery = options_.cws ? out.query * out.scores.unsqueeze(1) : out.query;
      break;
    }
    case TwoStageHead::kNae: {
      const NormAwareOutput n = nae_->forward(x);
      out.logits = n.logits;
      out.scores = n.prob;
      out.query = n.angle;
      out.gallery = norm_aware_embedding(n.angle, n.prob);
      break;
    }
    case TwoStageHead::kNaePlus: {
      const PixelNormAwareOutput n = nae_plus_->forward(x);
      out.logits = n.logits;
      out.scores = nae_plus_scores(n.logits, counts(rois));
      out.query = l2_normalize(n.pooled);
      out.gallery = nae_plus_embedding(n.pooled, out.scores);
      break;
    }
  }
  return out;
}

std::map<std::string, at::Tensor> TwoStageModelImpl::forward_train(const std::vector<at::Tensor>& images,
                                                                   const std::vector<TrainingTarget>& targets) {
  TORCH_CHECK(is_training(), "TwoStageModel::forward_train needs training mode (call train())");
  TORCH_CHECK(images.size() == targets.size() && !images.empty(), "forward_train: ", images.size(), " images and ",
              targets.size(), " targets");
  std::vector<at::Tensor> gt_boxes, gt_classes;
  for (const auto& t : targets) {
    TORCH_CHECK(t.boxes.dim() == 2 && t.boxes.size(1) == 4 && t.pids.numel() == t.boxes.size(0),
                "forward_train: a target needs boxes [G, 4] and pids [G]");
    gt_boxes.push_back(t.boxes);
  }
  const TransformedBatch batch = train_transform_(images, gt_boxes);
  for (const auto& b : batch.boxes) gt_classes.push_back(at::ones({b.size(0)}, b.options().dtype(at::kLong)));

  const at::Tensor c4 = backbone_->forward(batch.images).at("C4");
  const RPNOutput proposals = rpn_->forward(batch.sizes, {c4}, batch.boxes);
  const RoISamples samples = select_training_samples(proposals.boxes, batch.boxes, gt_classes, options_.roi_heads);
  const HeadOutput head = run_heads(c4, samples.proposals);

  const at::Tensor labels = at::cat(samples.labels);
  std::map<std::string, at::Tensor> losses = proposals.losses;
  losses["loss_box_reg"] = fastrcnn_box_loss(head.box_regression, labels, at::cat(samples.regression_targets));
  switch (options_.head) {
    case TwoStageHead::kOim:
      losses["loss_detection"] = at::cross_entropy_loss(head.class_logits, labels);
      break;
    case TwoStageHead::kNae:
      losses["loss_detection"] = nae_detection_loss(head.logits, labels > 0);
      break;
    case TwoStageHead::kNaePlus: {
      const at::Tensor pixel_labels = nae_plus_pixel_labels(
          at::cat(samples.proposals), paired_gt_boxes(samples.proposals, batch.boxes), options_.pixel_size);
      losses["loss_detection"] = nae_plus_detection_loss(head.logits, pixel_labels);
      break;
    }
  }
  losses["loss_reid"] = reid_loss_->forward(head.query, roi_identities(samples, targets));

  const auto& w = options_.loss_weights;
  losses["loss"] = w.rpn_objectness * losses.at("loss_objectness") + w.rpn_box * losses.at("loss_rpn_box_reg") +
                   w.box * losses.at("loss_box_reg") + w.detection * losses.at("loss_detection") +
                   w.reid * losses.at("loss_reid");
  return losses;
}

std::vector<Detections> TwoStageModelImpl::detect(const std::vector<at::Tensor>& images) {
  TORCH_CHECK(!is_training(), "TwoStageModel::detect needs evaluation mode (call eval())");
  const TransformedBatch batch = test_transform_(images);
  const at::Tensor c4 = backbone_->forward(batch.images).at("C4");
  const RPNOutput proposals = rpn_->forward(batch.sizes, {c4});
  const HeadOutput head = run_heads(c4, proposals.boxes);

  // Person / background probabilities in the layout postprocessing expects.
  const at::Tensor probs = at::stack({1 - head.scores, head.scores}, 1);
  const std::vector<RoIDetections> kept =
      postprocess_detections_from_probs(probs, head.box_regression, proposals.boxes, batch.sizes.images,
                                        options_.roi_heads);
  std::vector<at::Tensor> kept_boxes;
  for (const auto& d : kept) kept_boxes.push_back(d.boxes);
  const std::vector<at::Tensor> boxes = test_transform_.postprocess(kept_boxes, batch.sizes.images,
                                                                    batch.original_sizes);
  std::vector<Detections> out;
  int64_t offset = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    // A detection keeps the embedding of the proposal it was regressed from.
    const at::Tensor rows = kept[i].proposal + offset;
    out.push_back({boxes[i], kept[i].scores, head.gallery.index_select(0, rows)});
    offset += proposals.boxes[i].size(0);
  }
  return out;
}

std::vector<at::Tensor> TwoStageModelImpl::embed(const std::vector<at::Tensor>& images,
                                                 const std::vector<at::Tensor>& boxes) {
  TORCH_CHECK(!is_training(), "TwoStageModel::embed needs evaluation mode (call eval())");
  TORCH_CHECK(images.size() == boxes.size(), "embed: ", images.size(), " images but ", boxes.size(), " box lists");
  const TransformedBatch batch = test_transform_(images, boxes);
  const at::Tensor c4 = backbone_->forward(batch.images).at("C4");
  const at::Tensor query = run_heads(c4, batch.boxes).query;
  return query.split_with_sizes(counts(batch.boxes));
}

TwoStageSearchModel::TwoStageSearchModel(TwoStageModel model)
    : model_(std::move(model)), device_(model_->parameters().front().device()) {
  model_->eval();
}

std::string TwoStageSearchModel::name() const { return two_stage_head_name(model_->options().head); }

Detections TwoStageSearchModel::detect(const at::Tensor& image) {
  torch::NoGradGuard no_grad;
  Detections d = model_->detect({image.to(device_)}).front();
  return {d.boxes.cpu(), d.scores.cpu(), d.features.cpu()};
}

at::Tensor TwoStageSearchModel::embed(const at::Tensor& image, const at::Tensor& boxes) {
  torch::NoGradGuard no_grad;
  return model_->embed({image.to(device_)}, {boxes.to(device_, at::kFloat)}).front().cpu();
}

}  // namespace psearch::modeling
