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

#include <functional>
#include <stdexcept>
#include <utility>

#include "psearch/boxes/box_ops.h"
#include "psearch/checkpoint/state_dict.h"
#include "psearch/config/config.h"
#include "psearch/modeling/backbone/backbone_config.h"
#include "psearch/modeling/layers/normalize.h"
#include "psearch/modeling/pretrained_weights.h"
#include "psearch/util/traceable.h"

namespace psearch::modeling {
namespace {

/// MobileNetV2's first block of the RoI head: features.14 halves the stride-16 map.
constexpr int64_t kMobileNetV2HeadStart = 14;

/// A whole-ResNet key as the two-stage trunk names it: layer4 is the RoI head.
std::string trunk_name(const std::string& name) {
  return name.rfind("layer4.", 0) == 0 ? "roi_heads.head." + name.substr(7) : "backbone." + name;
}

/// A whole-MobileNetV2 key (features.i.*) as the two-stage trunk names it.
std::string mobilenet_trunk_name(const std::string& name) {
  const size_t dot = name.find('.', 9);  // after "features."
  const int64_t block = std::stoll(name.substr(9, dot - 9));
  if (block < kMobileNetV2HeadStart) return "backbone." + name;
  return "roi_heads.head." + std::to_string(block - kMobileNetV2HeadStart) + name.substr(dot);
}

std::vector<int64_t> counts(const std::vector<at::Tensor>& boxes) {
  std::vector<int64_t> n;
  for (const auto& b : boxes) n.push_back(b.size(0));
  return n;
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

const std::vector<std::string>& two_stage_loss_names() {
  static const std::vector<std::string> names = {"loss_objectness", "loss_rpn_box_reg", "loss_box_reg",
                                                 "loss_detection", "loss_reid"};
  return names;
}

TwoStageOptions two_stage_options_from_config(const config::Config& c, int64_t num_pids) {
  const auto& m = c.model;
  const auto& t = m.two_stage;
  TwoStageOptions o(m.oim.num_pids > 0 ? m.oim.num_pids : num_pids);
  o.head = parse_two_stage_head(m.type);
  if (m.backbone.arch == "mobilenet_v2")
    o.mobilenet = mobilenet_v2_options(m.backbone);
  else
    o.backbone = resnet_options(m.backbone);
  o.rpn = rpn_options_from_config(t.rpn);
  o.roi_heads = roi_box_head_options_from_config(t.roi_heads)
                    .score_thresh(c.inference.score_thresh)
                    .nms_thresh(c.inference.nms_thresh)
                    .detections_per_img(c.inference.detections_per_img);
  o.embedding = EmbeddingHeadOptions()
                    .dim(m.embedding_dim)
                    .fuse_res4(t.embedding.fuse_res4)
                    .feature_pool(t.roi_heads.feature_pool)
                    .bn_init(t.embedding.bn_init);
  o.pixel_size = t.embedding.pixel_size;
  o.oim.num_features(m.embedding_dim)
      .num_cq_size(m.oim.queue_size)
      .oim_momentum(m.oim.momentum)
      .oim_scalar(m.oim.scalar);
  o.loss_weights = c.train.loss_weights;
  o.train_transform = image_transform_options_from_config(c.train).mean(m.pixel_mean).std(m.pixel_std);
  o.test_transform = image_transform_options_from_config(c.inference).mean(m.pixel_mean).std(m.pixel_std);
  o.cws = c.inference.cws;
  return o;
}

TwoStageModelImpl::TwoStageModelImpl(const TwoStageOptions& options)
    : options_(options), train_transform_(options.train_transform), test_transform_(options.test_transform) {
  if (options.oim.num_pids() <= 0)
    throw std::invalid_argument("the OIM lookup table needs at least one identity (model.oim.num_pids, or labeled "
                                "persons in the training split)");
  // The stride-32 part of the trunk (ResNet layer4, MobileNetV2 features.14 .. 18) runs on
  // RoIs, so it moves from the backbone to the RoI head.
  torch::nn::Sequential head;
  int64_t trunk_channels = 0, head_channels = 0;
  if (options_.mobilenet) {
    mobilenet_ = register_module("backbone", MobileNetV2(*options_.mobilenet));
    head = mobilenet_->split_off(kMobileNetV2HeadStart);
    trunk_channels = MobileNetV2Impl::channels(kMobileNetV2HeadStart - 1);
    head_channels = MobileNetV2Impl::channels(MobileNetV2Impl::kNumBlocks - 1);
  } else {
    options_.backbone.last_stage("C4");
    backbone_ = register_module("backbone", ResNet(options_.backbone));
    head = backbone_->layer(4);
    backbone_->unregister_module("layer4");
    trunk_channels = backbone_->channels("C4");
    head_channels = backbone_->channels("C5");
  }
  rpn_ = register_module("rpn", RegionProposalNetwork(trunk_channels, options_.rpn));
  options_.roi_heads.with_classifier(options_.head == TwoStageHead::kOim);
  roi_heads_ = register_module("roi_heads", RoIBoxHead(head, head_channels, options_.roi_heads));

  options_.embedding.res4_channels(trunk_channels)
      .res5_channels(head_channels)
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

  const at::Tensor c4 = trunk_features(batch.images);
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

  losses["loss"] = weighted_total(losses, two_stage_loss_names(), options_.loss_weights);
  return losses;
}

std::vector<Detections> TwoStageModelImpl::detect(const std::vector<at::Tensor>& images) {
  TORCH_CHECK(!is_training(), "TwoStageModel::detect needs evaluation mode (call eval())");
  const TransformedBatch batch = test_transform_(images);
  const at::Tensor c4 = trunk_features(batch.images);
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
  const at::Tensor c4 = trunk_features(batch.images);
  const at::Tensor query = run_heads(c4, batch.boxes).query;
  return util::split_rows(query, counts(batch.boxes));
}

std::string TwoStageModelImpl::type() const { return two_stage_head_name(options_.head); }

at::Tensor TwoStageModelImpl::trunk_features(const at::Tensor& images) {
  return mobilenet_ ? mobilenet_->forward(images) : backbone_->forward(images).at("C4");
}

void TwoStageModelImpl::load_backbone_weights(const std::string& given) {
  const std::string path = resolve_backbone_weights(given, options_.mobilenet.has_value());
  // Load into a whole classifier first: that checks the file against torchvision's layout.
  checkpoint::TensorMap trunk;
  auto collect = [&trunk](torch::nn::Module& full, const std::function<std::string(const std::string&)>& rename) {
    for (const auto& item : full.named_parameters()) trunk[rename(item.key())] = item.value().detach();
    for (const auto& item : full.named_buffers()) trunk[rename(item.key())] = item.value().detach();
  };
  if (options_.mobilenet) {
    MobileNetV2 full(*options_.mobilenet);
    load_torchvision_mobilenet_v2(*full, path, checkpoint::Strictness::kStrict);
    collect(*full, mobilenet_trunk_name);
  } else {
    ResNetOptions options = options_.backbone;
    ResNet full(options.last_stage("C5"));
    load_torchvision_resnet(*full, path, checkpoint::Strictness::kStrict);
    collect(*full, trunk_name);
  }
  const checkpoint::LoadReport report = checkpoint::load_state_dict(*this, trunk, checkpoint::Strictness::kNonStrict, path);
  if (!report.unexpected.empty() || !report.mismatched.empty())
    throw std::runtime_error(path + ": ImageNet weights do not fit the detector trunk" + report.describe());
}

void TwoStageModelImpl::init_from(const std::string& source_type, checkpoint::TensorMap state,
                                  const std::string& path) {
  if (source_type == "nae" && options_.head == TwoStageHead::kNaePlus) {
    embedding_state_to_pixel_wise(state, "embedding_head.");
    checkpoint::load_state_dict(*this, state, checkpoint::Strictness::kStrict, path);
    return;
  }
  if (source_type != type() && options_.head == TwoStageHead::kNaePlus)
    throw std::runtime_error(path + ": holds a '" + source_type +
                             "' model; a 'nae_plus' model can start from 'nae_plus' or 'nae' checkpoints only");
  PersonSearchModelImpl::init_from(source_type, std::move(state), path);
}

namespace {

std::vector<ModelType> two_stage_types() {
  auto build = [](const config::Config& c, int64_t num_pids) -> PersonSearchModel {
    return std::make_shared<TwoStageModelImpl>(two_stage_options_from_config(c, num_pids));
  };
  return {{"oim", "two_stage", "OIM-base: Faster R-CNN C4, softmax person score, OIM embedding", two_stage_loss_names(), build},
          {"nae", "two_stage", "NAE: norm-aware embedding (person score from the embedding norm)", two_stage_loss_names(), build},
          {"nae_plus", "two_stage", "NAE+: pixel-wise norm-aware embedding (init from NAE)", two_stage_loss_names(), build}};
}

}  // namespace

PSEARCH_REGISTER_MODEL_TYPES(two_stage_types)

}  // namespace psearch::modeling
