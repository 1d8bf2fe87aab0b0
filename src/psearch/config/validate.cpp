#include "psearch/config/validate.h"

#include "psearch/modeling/model_registry.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace psearch::config {
namespace detail {
namespace {

std::string text(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}
std::string text(int64_t v) { return std::to_string(v); }
template <class T>
std::string text(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + text(v[i]);
  return s + "]";
}

// Upper bounds far above any real setting: they exist so that a typo (an extra digit, a
// value in the wrong key) is refused at once instead of exhausting memory hours later.
constexpr int64_t kMaxBatch = 1024;           // images per iteration / forward pass
constexpr int64_t kMaxImageSide = 8192;       // pixels
constexpr int64_t kMaxDim = 65536;            // embedding dimension
constexpr int64_t kMaxPooled = 64;            // RoIAlign / NAE+ map side
constexpr int64_t kMaxIdentities = 10000000;  // OIM table rows and queue entries

/// Range checks that name the key and the file it came from.
class Checker {
 public:
  explicit Checker(const std::function<std::string(const std::string&)>& origin) : origin_(origin) {}

  void require(bool ok, const std::string& path, const std::string& what, const std::string& got) const {
    if (!ok) throw ConfigError(origin_(path) + ": key '" + path + "' must be " + what + ", got " + got);
  }
  template <class T>
  void at_least(const std::string& path, T v, T min) const {
    require(v >= min, path, ">= " + text(min), text(v));
  }
  template <class T>
  void in_range(const std::string& path, T v, T min, T max) const {
    require(v >= min && v <= max, path, "in [" + text(min) + ", " + text(max) + "]", text(v));
  }
  void positive(const std::string& path, double v) const { require(v > 0, path, "> 0", text(v)); }
  void fraction(const std::string& path, double v) const {
    require(v >= 0 && v <= 1, path, "in [0, 1]", text(v));
  }
  template <class T>
  void size_is(const std::string& path, const std::vector<T>& v, size_t n) const {
    require(v.size() == n, path, "a list of " + std::to_string(n) + " values", text(v));
  }

 private:
  const std::function<std::string(const std::string&)>& origin_;
};

void check_anchors(const Checker& c, const RpnConfig& rpn) {
  const std::string sizes = "model.two_stage.rpn.anchor_sizes";
  const std::string ratios = "model.two_stage.rpn.aspect_ratios";
  c.require(!rpn.anchor_sizes.empty(), sizes, "one non-empty list per feature map", "[]");
  c.require(rpn.aspect_ratios.size() == rpn.anchor_sizes.size(), ratios,
            "one list per feature map, as many as anchor_sizes (" + std::to_string(rpn.anchor_sizes.size()) + ")",
            std::to_string(rpn.aspect_ratios.size()) + " lists");
  for (size_t i = 0; i < rpn.anchor_sizes.size(); ++i) {
    const auto& s = rpn.anchor_sizes[i];
    const auto& r = rpn.aspect_ratios[i];
    c.require(!s.empty() && !r.empty(), sizes, "non-empty lists", text(s) + " / " + text(r));
    for (double v : s) c.positive(sizes, v);
    for (double v : r) c.positive(ratios, v);
    // One head serves every map, so every map needs the same number of anchors per cell.
    c.require(s.size() * r.size() == rpn.anchor_sizes[0].size() * rpn.aspect_ratios[0].size(), sizes,
              "lists giving the same number of anchors per cell on every feature map",
              std::to_string(s.size() * r.size()) + " on map " + std::to_string(i));
  }
}

void check_model(const Checker& c, const ModelConfig& m) {
  c.size_is("model.pixel_mean", m.pixel_mean, 3);
  c.size_is("model.pixel_std", m.pixel_std, 3);
  for (double v : m.pixel_std) c.positive("model.pixel_std", v);
  c.require(m.backbone.freeze_at >= 0 && m.backbone.freeze_at <= 5, "model.backbone.freeze_at", "in [0, 5]",
            text(m.backbone.freeze_at));
  c.in_range<int64_t>("model.embedding_dim", m.embedding_dim, 1, kMaxDim);
  c.in_range<int64_t>("model.oim.num_pids", m.oim.num_pids, 0, kMaxIdentities);
  c.in_range<int64_t>("model.oim.queue_size", m.oim.queue_size, 0, kMaxIdentities);
  c.fraction("model.oim.momentum", m.oim.momentum);
  c.positive("model.oim.scalar", m.oim.scalar);
}

/// The two-stage family's section (checked whatever model.type is: its defaults are valid,
/// and a bad value should not wait until someone switches the type).
void check_two_stage(const Checker& c, const TwoStageConfig& t, const std::string& type) {
  const RpnConfig& rpn = t.rpn;
  const std::string r = "model.two_stage.rpn.";
  check_anchors(c, rpn);
  c.at_least<int64_t>(r + "conv_depth", rpn.conv_depth, 1);
  c.fraction(r + "fg_iou_thresh", rpn.fg_iou_thresh);
  c.require(rpn.bg_iou_thresh >= 0 && rpn.bg_iou_thresh <= rpn.fg_iou_thresh, r + "bg_iou_thresh",
            "in [0, fg_iou_thresh]", text(rpn.bg_iou_thresh));
  c.at_least<int64_t>(r + "batch_size_per_image", rpn.batch_size_per_image, 1);
  c.fraction(r + "positive_fraction", rpn.positive_fraction);
  c.at_least<int64_t>(r + "pre_nms_top_n_train", rpn.pre_nms_top_n_train, 1);
  c.at_least<int64_t>(r + "post_nms_top_n_train", rpn.post_nms_top_n_train, 1);
  c.at_least<int64_t>(r + "pre_nms_top_n_test", rpn.pre_nms_top_n_test, 1);
  c.at_least<int64_t>(r + "post_nms_top_n_test", rpn.post_nms_top_n_test, 1);
  c.fraction(r + "nms_thresh", rpn.nms_thresh);
  c.fraction(r + "score_thresh", rpn.score_thresh);
  c.at_least(r + "min_size", rpn.min_size, 0.0);

  const RoiHeadsConfig& roi = t.roi_heads;
  const std::string h = "model.two_stage.roi_heads.";
  c.in_range<int64_t>(h + "pooler_resolution", roi.pooler_resolution, 1, kMaxPooled);
  c.fraction(h + "fg_iou_thresh", roi.fg_iou_thresh);
  c.require(roi.bg_iou_thresh_hi >= 0 && roi.bg_iou_thresh_hi <= roi.fg_iou_thresh, h + "bg_iou_thresh_hi",
            "in [0, fg_iou_thresh]", text(roi.bg_iou_thresh_hi));
  c.require(roi.bg_iou_thresh_lo >= 0 && roi.bg_iou_thresh_lo <= roi.bg_iou_thresh_hi, h + "bg_iou_thresh_lo",
            "in [0, bg_iou_thresh_hi]", text(roi.bg_iou_thresh_lo));
  c.at_least<int64_t>(h + "batch_size_per_image", roi.batch_size_per_image, 1);
  c.fraction(h + "positive_fraction", roi.positive_fraction);
  c.size_is(h + "bbox_reg_weights", roi.bbox_reg_weights, 4);
  for (double v : roi.bbox_reg_weights) c.positive(h + "bbox_reg_weights", v);

  const std::string e = "model.two_stage.embedding.pixel_size";
  c.in_range<int64_t>(e, t.embedding.pixel_size, 1, kMaxPooled);
  // conv5 (stride 2) halves the RoIAlign grid, and NAE+ labels the pixels of that map.
  if (type == "nae_plus")
    c.require(2 * t.embedding.pixel_size == roi.pooler_resolution, e,
              "half of model.two_stage.roi_heads.pooler_resolution (" + text(roi.pooler_resolution) + ") for nae_plus",
              text(t.embedding.pixel_size));
}

/// The one-stage family's section (checked whatever model.type is, as the two-stage one).
void check_one_stage(const Checker& c, const OneStageConfig& o) {
  const std::string s = "model.one_stage.";
  constexpr size_t kLevels = 5;  // P3 .. P7
  c.require(o.anchor_sizes.size() == kLevels, s + "anchor_sizes", "one list per pyramid level P3..P7 (5 lists)",
            text(o.anchor_sizes));
  c.require(o.aspect_ratios.size() == o.anchor_sizes.size(), s + "aspect_ratios", "as many lists as anchor_sizes",
            text(o.aspect_ratios));
  for (size_t l = 0; l < o.anchor_sizes.size() && l < o.aspect_ratios.size(); ++l) {
    c.require(!o.anchor_sizes[l].empty() && !o.aspect_ratios[l].empty() &&
                  o.anchor_sizes[l].size() * o.aspect_ratios[l].size() ==
                      o.anchor_sizes[0].size() * o.aspect_ratios[0].size(),
              s + "anchor_sizes", "non-empty lists with the same number of anchors (sizes x ratios) on every level",
              text(o.anchor_sizes));
    for (double v : o.anchor_sizes[l]) c.positive(s + "anchor_sizes", v);
    for (double v : o.aspect_ratios[l]) c.positive(s + "aspect_ratios", v);
  }
  c.in_range<int64_t>(s + "head_channels", o.head_channels, 1, kMaxDim);
  c.in_range<int64_t>(s + "num_convs", o.num_convs, 1, 16);
  c.fraction(s + "fg_iou_thresh", o.fg_iou_thresh);
  c.require(o.bg_iou_thresh >= 0 && o.bg_iou_thresh <= o.fg_iou_thresh, s + "bg_iou_thresh", "in [0, fg_iou_thresh]",
            text(o.bg_iou_thresh));
  c.size_is(s + "box_coder_weights", o.box_coder_weights, 4);
  for (double v : o.box_coder_weights) c.positive(s + "box_coder_weights", v);
  c.positive(s + "smooth_l1_beta", o.smooth_l1_beta);
  c.fraction(s + "focal_alpha", o.focal_alpha);
  c.at_least(s + "focal_gamma", o.focal_gamma, 0.0);
  c.at_least<int64_t>(s + "pre_nms_top_n", o.pre_nms_top_n, 1);
  c.in_range<int64_t>(s + "distance_sets", o.distance_sets, 2, 9);
  c.at_least(s + "csa_logit_clamp", o.csa_logit_clamp, 0.0);
  c.at_least(s + "triplet_margin", o.triplet_margin, 0.0);
  c.fraction(s + "gallery_aggregation_iou", o.gallery_aggregation_iou);
  c.fraction(s + "query_overlap_iou", o.query_overlap_iou);
  c.at_least<int64_t>(s + "query_overlap_topk", o.query_overlap_topk, 1);
}

/// Every key of train.loss_weights must be a loss of the configured model.
void check_loss_weights(const Checker& c, const LossWeights& weights, const std::string& type) {
  const std::vector<std::string> names = modeling::model_type(type).loss_names;
  std::string valid;
  for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
  for (const auto& [name, weight] : weights) {
    const std::string path = "train.loss_weights." + name;
    c.require(std::find(names.begin(), names.end(), name) != names.end(), path,
              "a loss of model type '" + type + "' (" + valid + ")", "'" + name + "'");
    c.at_least(path, weight, 0.0);
  }
}

void check_sizes(const Checker& c, const std::string& section, int64_t min_size, int64_t max_size) {
  c.in_range<int64_t>(section + ".min_size", min_size, 1, kMaxImageSide);
  c.in_range<int64_t>(section + ".max_size", max_size, 1, kMaxImageSide);
  c.require(max_size >= min_size, section + ".max_size", ">= min_size (" + text(min_size) + ")", text(max_size));
}

void check_train(const Checker& c, const TrainConfig& t) {
  c.in_range<int64_t>("train.batch_size", t.batch_size, 1, kMaxBatch);
  check_sizes(c, "train", t.min_size, t.max_size);
  c.positive("train.lr", t.lr);
  c.require(t.momentum >= 0 && t.momentum < 1, "train.momentum", "in [0, 1)", text(t.momentum));
  c.at_least("train.weight_decay", t.weight_decay, 0.0);
  c.at_least("train.weight_decay_bias", t.weight_decay_bias, 0.0);
  c.at_least("train.bias_lr_factor", t.bias_lr_factor, 0.0);
  c.at_least<int64_t>("train.length", t.length, 1);
  c.require(t.warmup >= 0 && t.warmup <= t.length, "train.warmup", "in [0, length]", text(t.warmup));
  c.require(t.warmup_factor > 0 && t.warmup_factor <= 1, "train.warmup_factor", "in (0, 1]", text(t.warmup_factor));
  for (size_t i = 0; i < t.milestones.size(); ++i) {
    const bool increasing = i == 0 ? t.milestones[i] >= 1 : t.milestones[i] > t.milestones[i - 1];
    c.require(increasing && t.milestones[i] <= t.length, "train.milestones",
              "increasing, each in [1, length (" + text(t.length) + ")]", text(t.milestones));
  }
  c.positive("train.gamma", t.gamma);
  c.at_least<int64_t>("train.checkpoint_every", t.checkpoint_every, 1);
  c.at_least<int64_t>("train.log_every", t.log_every, 1);
}

void check_inference(const Checker& c, const InferenceConfig& i) {
  check_sizes(c, "inference", i.min_size, i.max_size);
  c.in_range<int64_t>("inference.batch_size", i.batch_size, 1, kMaxBatch);
  c.fraction("inference.score_thresh", i.score_thresh);
  c.fraction("inference.nms_thresh", i.nms_thresh);
  c.at_least<int64_t>("inference.detections_per_img", i.detections_per_img, 1);
  c.fraction("inference.det_thresh", i.det_thresh);
}

void check_dataset(const Checker& c, const DatasetConfig& d) {
  c.require(!d.root.empty(), "dataset.root", "a directory", "''");
  if (d.name == "prw") {
    c.require(d.gallery_size == -1, "dataset.gallery_size", "-1 for PRW (the whole test set)", text(d.gallery_size));
  } else {
    c.require(d.gallery_size == -1 || d.gallery_size >= 1, "dataset.gallery_size", "-1 or a positive size",
              text(d.gallery_size));
  }
}

/// The separate pipeline's section (checked whatever model.type is).
void check_separate(const Checker& c, const SeparateConfig& s) {
  auto positive_pair = [](const std::vector<int64_t>& v) { return v.size() == 2 && v[0] >= 32 && v[1] >= 32; };
  c.require(positive_pair(s.detector_input_size), "model.separate.detector_input_size",
            "[height, width], each at least 32", text(s.detector_input_size));
  c.require(positive_pair(s.crop_size), "model.separate.crop_size", "[height, width], each at least 32",
            text(s.crop_size));
}

}  // namespace

void validate_with_origins(const Config& config, const std::function<std::string(const std::string&)>& origin) {
  const Checker c(origin);
  c.require(config.version == kConfigVersion, "version", std::to_string(kConfigVersion) + " (or absent: 1, migrated)",
            text(config.version));
  check_model(c, config.model);
  check_two_stage(c, config.model.two_stage, config.model.type);
  check_one_stage(c, config.model.one_stage);
  check_separate(c, config.model.separate);
  check_train(c, config.train);
  check_loss_weights(c, config.train.loss_weights, config.model.type);
  check_inference(c, config.inference);
  check_dataset(c, config.dataset);
}

}  // namespace detail

void validate(const Config& config, const std::string& source) {
  detail::validate_with_origins(config, [&](const std::string&) { return source; });
}

}  // namespace psearch::config
