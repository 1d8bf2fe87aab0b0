#pragma once
/// Typed experiment configuration of the person-search models (the two-stage OIM-base, NAE,
/// NAE+ and the later one-stage family), read from YAML files with inheritance and
/// command-line overrides.
///
/// Layout: `model` holds what every model has (type, normalisation, backbone, embedding
/// dimension, OIM) plus one section per model family (`model.two_stage`); `train`,
/// `inference` and `dataset` are shared. The model types, their family and their loss names
/// come from the model registry (psearch/modeling/model_registry.h), so `model.type` and
/// the keys of `train.loss_weights` are checked against what is actually built.
///
/// Every section is a plain struct whose members carry the defaults; its `visit` member
/// lists the YAML keys in file order, with one line of documentation each. The same list
/// drives reading (with unknown-key and type checks), writing back to YAML and the key
/// listing of `describe_keys()` (docs/config.md is checked against it), so a key exists in
/// exactly one place. The file format is described in docs/config.md.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace psearch::config {

/// A configuration that cannot be used: a missing or unparsable file, an unknown key, a
/// value of the wrong type or out of range. what() is one line that starts with the file
/// (or the command-line override) the offending key came from, e.g.
/// "configs/x.yaml: unknown key 'train.lrr' (did you mean 'train.lr'?)".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A visitor V is called as v(key, member, doc) for values and sections, and as
// v.choice(key, member, {allowed...}, doc) for strings restricted to a set.

/// Version of the layout. Files without a `version` key are version 1 (the layout before
/// the model registry: model.rpn / roi_heads / embedding, named loss-weight fields); they
/// are migrated on reading, so configs and checkpoints written before keep working.
inline constexpr int64_t kConfigVersion = 2;

struct BackboneConfig {
  std::string arch = "resnet50";
  std::string weights;  // empty: random initialisation
  std::string norm = "frozen";
  int64_t freeze_at = 1;

  template <class V>
  void visit(V& v) {
    v.choice("arch", arch, {"resnet18", "resnet34", "resnet50", "mobilenet_v2"},
             "trunk; two-stage models run it to stride 16 (ResNet conv1..conv4, MobileNetV2 features.0..13) and the rest (layer4, features.14..18) as the RoI head; PCNet puts its FPN on C3..C5 (ResNet layer2..4, MobileNetV2 features.6, 13, 18)");
    v("weights", weights, "torchvision ImageNet checkpoint of model.backbone.arch (e.g. resnet50-0676ba61.pth), 'imagenet' for the MobileNetV2 that set-up installs, or for one-stage models also a torchvision RetinaNet one (trunk + FPN); empty = random init");
    v.choice("norm", norm, {"frozen", "batchnorm"}, "BatchNorm of the backbone and conv5 head: frozen statistics or trainable nn::BatchNorm2d");
    v("freeze_at", freeze_at, "0: train all; 1: freeze conv1; k >= 2: also freeze layer1..layer(k-1) (MobileNetV2: every block whose output stride is <= 2^k)");
  }
};

struct RpnConfig {
  std::vector<std::vector<double>> anchor_sizes{{32, 64, 128, 256, 512}};
  std::vector<std::vector<double>> aspect_ratios{{0.5, 1.0, 2.0}};
  int64_t conv_depth = 1;
  double fg_iou_thresh = 0.7;
  double bg_iou_thresh = 0.3;
  int64_t batch_size_per_image = 256;
  double positive_fraction = 0.5;
  int64_t pre_nms_top_n_train = 12000;
  int64_t post_nms_top_n_train = 2000;
  int64_t pre_nms_top_n_test = 6000;
  int64_t post_nms_top_n_test = 300;
  double nms_thresh = 0.7;
  double score_thresh = 0.0;
  double min_size = 1e-3;

  template <class V>
  void visit(V& v) {
    v("anchor_sizes", anchor_sizes, "anchor sizes (sqrt of area, input pixels), one list per feature map");
    v("aspect_ratios", aspect_ratios, "anchor height/width ratios, one list per feature map");
    v("conv_depth", conv_depth, "number of 3x3 conv + ReLU layers of the RPN head");
    v("fg_iou_thresh", fg_iou_thresh, "anchors with IoU >= this to a ground truth are positives");
    v("bg_iou_thresh", bg_iou_thresh, "anchors with IoU < this to every ground truth are negatives");
    v("batch_size_per_image", batch_size_per_image, "anchors sampled per image for the RPN losses");
    v("positive_fraction", positive_fraction, "largest share of positives among the sampled anchors");
    v("pre_nms_top_n_train", pre_nms_top_n_train, "proposals kept per feature map before NMS, training");
    v("post_nms_top_n_train", post_nms_top_n_train, "proposals kept per image after NMS, training");
    v("pre_nms_top_n_test", pre_nms_top_n_test, "proposals kept per feature map before NMS, inference");
    v("post_nms_top_n_test", post_nms_top_n_test, "proposals kept per image after NMS, inference");
    v("nms_thresh", nms_thresh, "IoU threshold of the proposal NMS");
    v("score_thresh", score_thresh, "proposals with objectness probability below this are dropped");
    v("min_size", min_size, "proposals narrower or lower than this (pixels) are dropped");
  }
};

struct RoiHeadsConfig {
  int64_t pooler_resolution = 14;
  int64_t sampling_ratio = 2;
  double fg_iou_thresh = 0.5;
  double bg_iou_thresh_hi = 0.5;
  double bg_iou_thresh_lo = 0.1;
  int64_t batch_size_per_image = 128;
  double positive_fraction = 0.5;
  std::vector<double> bbox_reg_weights{10.0, 10.0, 5.0, 5.0};
  bool bbox_reg_bn = true;
  std::string feature_pool = "avg";

  template <class V>
  void visit(V& v) {
    v("pooler_resolution", pooler_resolution, "RoIAlign output size on C4 (before the conv5 head)");
    v("sampling_ratio", sampling_ratio, "RoIAlign samples per bin (<= 0: adaptive)");
    v("fg_iou_thresh", fg_iou_thresh, "proposals with IoU >= this to a ground truth are persons");
    v("bg_iou_thresh_hi", bg_iou_thresh_hi, "background proposals have IoU < this to every ground truth ...");
    v("bg_iou_thresh_lo", bg_iou_thresh_lo, "... and IoU >= this to their best ground truth");
    v("batch_size_per_image", batch_size_per_image, "proposals sampled per image for the head losses");
    v("positive_fraction", positive_fraction, "largest share of persons among the sampled proposals");
    v("bbox_reg_weights", bbox_reg_weights, "(wx, wy, ww, wh) of the head's box coder");
    v("bbox_reg_bn", bbox_reg_bn, "BatchNorm1d after the box regression FC");
    v.choice("feature_pool", feature_pool, {"avg", "max"},
             "pooling of RoI maps into vectors (box regressor, NAE/OIM embedding): avg = paper's GAP, max = official NAE4PS code");
  }
};

struct EmbeddingConfig {
  bool fuse_res4 = true;
  int64_t pixel_size = 7;
  std::string bn_init = "official";

  template <class V>
  void visit(V& v) {
    v("fuse_res4", fuse_res4, "concatenate projections of pooled C4 and C5 features (dim/2 each) instead of C5 only");
    v("pixel_size", pixel_size, "NAE+: spatial size k of the per-pixel embedding map (k x k)");
    v.choice("bn_init", bn_init, {"official", "unit"},
             "the projection BatchNorm's weight at start: official = N(0, 0.01) as NAE4PS, unit = 1 (bias 0 in both; docs/training.md)");
  }
};

struct OimConfig {
  int64_t num_pids = 0;
  int64_t queue_size = 5000;
  double momentum = 0.5;
  double scalar = 30.0;

  template <class V>
  void visit(V& v) {
    v("num_pids", num_pids, "labeled identities (lookup-table rows); 0 = take it from the training split");
    v("queue_size", queue_size, "entries of the circular queue of unlabeled persons");
    v("momentum", momentum, "lookup-table update: lut = momentum * lut + (1 - momentum) * x");
    v("scalar", scalar, "inverse softmax temperature applied to the cosine similarities");
  }
};

/// The two-stage family (OIM-base, NAE, NAE+): Faster R-CNN on ResNet C4.
struct TwoStageConfig {
  RpnConfig rpn;
  RoiHeadsConfig roi_heads;
  EmbeddingConfig embedding;

  template <class V>
  void visit(V& v) {
    v("rpn", rpn, "region proposal network on C4");
    v("roi_heads", roi_heads, "RoIAlign, conv5 head and box regression");
    v("embedding", embedding, "person embedding head");
  }
};

/// The one-stage family (PCNet; PCNet-dagger and the light version are configs of it):
/// RetinaNet on ResNet + FPN with a serialized head. Paper defaults; configs/official/
/// holds the official code's choices (docs/pcnet.md lists each difference).
struct OneStageConfig {
  std::string p6_from = "p5";
  int64_t head_channels = 256;
  int64_t num_convs = 1;
  bool share_towers = false;
  std::vector<std::vector<double>> anchor_sizes{{32}, {64}, {128}, {256}, {512}};
  std::vector<std::vector<double>> aspect_ratios{{2.0}, {2.0}, {2.0}, {2.0}, {2.0}};
  double fg_iou_thresh = 0.5;
  double bg_iou_thresh = 0.4;
  std::vector<double> box_coder_weights{10.0, 10.0, 5.0, 5.0};
  double smooth_l1_beta = 0.11;
  double focal_alpha = 0.25;
  double focal_gamma = 2.0;
  int64_t pre_nms_top_n = 1000;
  std::string reid_features = "cpp";
  std::string reid_branch = "serialized";
  int64_t distance_sets = 3;
  std::string offset_init = "kaiming";
  bool csa = true;
  double csa_logit_clamp = 0.0;
  std::string triplet = "paper";
  double triplet_margin = 0.5;
  double gallery_aggregation_iou = 0.0;
  std::string query_feature = "overlap";
  double query_overlap_iou = 0.5;
  int64_t query_overlap_topk = 32;

  template <class V>
  void visit(V& v) {
    v.choice("p6_from", p6_from, {"p5", "c5"}, "input of the P6 conv: P5 (torchvision, PCNet official) or C5 (Detectron)");
    v("head_channels", head_channels, "width of the classification and box towers (paper 256; light 64)");
    v("num_convs", num_convs, "3x3 conv + ReLU layers per tower (RetinaNet 4; official PCNet PRW 1)");
    v("share_towers", share_towers, "one tower feeds both predictors (official 'fast' configs)");
    v("anchor_sizes", anchor_sizes, "anchor sizes (sqrt of area, input pixels), one list per level P3..P7");
    v("aspect_ratios", aspect_ratios, "anchor height/width ratios, one list per level (PCNet: [2.0]; PCNet-dagger: [1.0, 2.0])");
    v("fg_iou_thresh", fg_iou_thresh, "anchors with IoU >= this to a ground truth are positives");
    v("bg_iou_thresh", bg_iou_thresh, "anchors with IoU < this to every ground truth are negatives");
    v("box_coder_weights", box_coder_weights, "(wx, wy, ww, wh) of the box coder");
    v("smooth_l1_beta", smooth_l1_beta, "transition point of the smooth L1 box loss");
    v("focal_alpha", focal_alpha, "focal loss alpha (weight of positives)");
    v("focal_gamma", focal_gamma, "focal loss gamma (focusing exponent)");
    v("pre_nms_top_n", pre_nms_top_n, "inference: candidates kept per level (by score) before NMS");
    v.choice("reid_features", reid_features, {"cpp", "conv"},
             "F_reid from Contextual Points Pooling (deformable 3x3 with learned offsets) or a plain 3x3 conv (Table 1 ablation)");
    v.choice("reid_branch", reid_branch, {"serialized", "parallel"},
             "towers read F_reid (Eq. 2, serialized) or the pyramid itself (parallel re-id branch, Table 3)");
    v("distance_sets", distance_sets, "M: the 9 CPP points split by kernel row into M sets for the distance loss (Eq. 6)");
    v.choice("offset_init", offset_init, {"kaiming", "zero"},
             "initial weights of the CPP offset conv: kaiming_uniform(a=1) (official) or zero (points start on the 3x3 grid, the usual DCN practice)");
    v("csa", csa, "Cross Scale Aggregation (Eq. 8-10); off: the re-id feature is the CPP feature f' (Eq. 7)");
    v("csa_logit_clamp", csa_logit_clamp, "clamp CSA attention logits to [-c, c] (official 50); 0: no clamp (paper)");
    v.choice("triplet", triplet, {"paper", "official"},
             "paper: Eq. 11, squared L2, positive f', negatives f'_j; official: cosine, negatives the CSA features");
    v("triplet_margin", triplet_margin, "sigma of the triplet loss (paper 0.5)");
    v("gallery_aggregation_iou", gallery_aggregation_iou,
      "gallery f' = mean CPP feature of the pre-NMS boxes overlapping a detection by IoU >= this (official 0.6); 0: off");
    v.choice("query_feature", query_feature, {"overlap", "best_anchor"},
             "query f': mean CPP feature of the anchors whose boxes overlap the query box (official) or the single best one");
    v("query_overlap_iou", query_overlap_iou, "query: anchors whose decoded box has IoU >= this with the query box");
    v("query_overlap_topk", query_overlap_topk, "query: at most this many of them, by IoU");
  }
};

/// The separate pipeline (model.type "separate"): a pretrained pedestrian detector, then
/// each detected box cropped and embedded by an ImageNet classifier trunk. Nothing is
/// trained; set-up installs and converts both weight files (docs/pretrained.md).
struct SeparateConfig {
  std::string detector_weights;  // empty: <weights dir>/ssdlite_person.pth
  std::vector<int64_t> detector_input_size{300, 300};
  std::string embedder_weights;  // empty: <weights dir>/mobilenet_v2_imagenet.pth
  std::vector<int64_t> crop_size{256, 128};

  template <class V>
  void visit(V& v) {
    v("detector_weights", detector_weights,
      "SSDLite-MobileNetV2 person detector (converted by set-up); empty: $PSEARCH_WEIGHTS_DIR/ssdlite_person.pth");
    v("detector_input_size", detector_input_size,
      "detector input [height, width]; trained at [300, 300], larger finds smaller people");
    v("embedder_weights", embedder_weights,
      "ImageNet MobileNetV2 (torchvision names); empty: $PSEARCH_WEIGHTS_DIR/mobilenet_v2_imagenet.pth");
    v("crop_size", crop_size, "[height, width] each box is resized to before the embedder (re-id's usual 256 x 128)");
  }
};

/// Names of the registered model types (model.type), sorted.
std::vector<std::string> registered_model_types();

struct ModelConfig {
  std::string type = "nae";
  std::vector<double> pixel_mean{0.485, 0.456, 0.406};
  std::vector<double> pixel_std{0.229, 0.224, 0.225};
  BackboneConfig backbone;
  int64_t embedding_dim = 256;
  OimConfig oim;
  TwoStageConfig two_stage;
  OneStageConfig one_stage;
  SeparateConfig separate;

  template <class V>
  void visit(V& v) {
    v.choice("type", type, registered_model_types(), "which model (psearch models lists them with their losses)");
    v("pixel_mean", pixel_mean, "RGB mean subtracted from images in [0, 1]");
    v("pixel_std", pixel_std, "RGB standard deviation images are divided by");
    v("backbone", backbone, "ResNet trunk");
    v("embedding_dim", embedding_dim, "person embedding dimension d");
    v("oim", oim, "online instance matching loss");
    v("two_stage", two_stage, "two-stage family (oim, nae, nae_plus): RPN, RoI head, embedding head");
    v("one_stage", one_stage, "one-stage family (pcnet): RetinaNet-FPN trunk, CPP, CSA");
    v("separate", separate, "separate pipeline (separate): pretrained detector + ImageNet embedder of each box");
  }
};

/// Loss name (as the model reports it, e.g. "loss_box_reg") -> weight in the total loss.
/// Names not listed weigh 1; names the model does not have are refused.
using LossWeights = std::map<std::string, double>;

struct TrainConfig {
  int64_t batch_size = 5;
  int64_t min_size = 900;
  int64_t max_size = 1500;
  bool flip = true;
  double lr = 0.003;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double weight_decay_bias = 0.0;
  double bias_lr_factor = 1.0;
  std::string unit = "epoch";
  int64_t length = 22;
  int64_t warmup = 1;
  double warmup_factor = 1e-3;
  std::vector<int64_t> milestones{16};
  double gamma = 0.1;
  double clip_grad_norm = 10.0;
  LossWeights loss_weights;
  std::string init_from;
  int64_t seed = 1;
  int64_t checkpoint_every = 1;
  int64_t log_every = 10;
  std::string precision = "fp32";

  template <class V>
  void visit(V& v) {
    v("batch_size", batch_size, "images per iteration");
    v("min_size", min_size, "shorter image side after resizing (pixels)");
    v("max_size", max_size, "upper bound on the longer side after resizing (pixels)");
    v("flip", flip, "random horizontal flip");
    v("lr", lr, "base learning rate of SGD");
    v("momentum", momentum, "SGD momentum");
    v("weight_decay", weight_decay, "L2 weight decay of weights");
    v("weight_decay_bias", weight_decay_bias, "L2 weight decay of biases");
    v("bias_lr_factor", bias_lr_factor, "learning rate of biases = lr * bias_lr_factor");
    v.choice("unit", unit, {"epoch", "iteration"}, "unit of length, warmup, milestones and checkpoint_every");
    v("length", length, "training length");
    v("warmup", warmup, "linear warm-up length (0: none); lr rises per iteration from lr * warmup_factor to lr");
    v("warmup_factor", warmup_factor, "learning-rate factor at the first iteration of warm-up");
    v("milestones", milestones, "the learning rate is multiplied by gamma at each of these points");
    v("gamma", gamma, "learning-rate decay factor at each milestone");
    v("clip_grad_norm", clip_grad_norm, "clip the global gradient L2 norm to this (<= 0: no clipping)");
    v("loss_weights", loss_weights, "loss name -> weight in the total loss (unlisted losses weigh 1; psearch models lists the names)");
    v("init_from", init_from, "checkpoint to initialise the whole model from (NAE+ starts from a trained NAE); empty: none");
    v("seed", seed, "random seed (data order, flips, sampling, initialisation)");
    v("checkpoint_every", checkpoint_every, "write a checkpoint every this many units");
    v("log_every", log_every, "print losses, learning rate, speed and ETA every this many iterations");
    v.choice("precision", precision, {"fp32", "bf16", "fp16"},
             "forward pass under autocast in this dtype (fp16 adds dynamic loss scaling); fp32: none");
  }
};

struct InferenceConfig {
  int64_t min_size = 900;
  int64_t max_size = 1500;
  int64_t batch_size = 1;
  double score_thresh = 0.5;
  double nms_thresh = 0.4;
  int64_t detections_per_img = 300;
  double det_thresh = 0.5;
  bool cws = true;
  std::string memory_format = "contiguous";

  template <class V>
  void visit(V& v) {
    v("min_size", min_size, "shorter image side after resizing (pixels)");
    v("max_size", max_size, "upper bound on the longer side after resizing (pixels)");
    v("batch_size", batch_size, "gallery images per forward pass in eval");
    v("score_thresh", score_thresh, "detections with a lower person score are dropped before NMS");
    v("nms_thresh", nms_thresh, "IoU threshold of the NMS on final detections");
    v("detections_per_img", detections_per_img, "detections kept per image after NMS");
    v("det_thresh", det_thresh, "search: gallery detections with a lower score are not ranked (eval's --det-thresh default for this model)");
    v("cws", cws, "OIM-base: class-weighted similarity (embedding scaled by the person score)");
    v.choice("memory_format", memory_format, {"contiguous", "channels_last"},
             "layout of the convolution weights, and so of the activations (docs/benchmarks.md, \"Memory layout\")");
  }
};

struct DatasetConfig {
  std::string name = "prw";
  std::string root = "data/PRW";
  int64_t gallery_size = -1;
  bool ignore_cam_id = false;

  template <class V>
  void visit(V& v) {
    v.choice("name", name, {"prw", "cuhk-sysu"}, "dataset format");
    v("root", root, "dataset directory");
    v("gallery_size", gallery_size, "CUHK-SYSU gallery size per query (50..4000, -1: whole test set); PRW: -1");
    v("ignore_cam_id", ignore_cam_id, "PRW: also search same-camera gallery frames");
  }
};

/// A whole experiment.
struct Config {
  int64_t version = kConfigVersion;
  ModelConfig model;
  TrainConfig train;
  InferenceConfig inference;
  DatasetConfig dataset;

  template <class V>
  void visit(V& v) {
    v("version", version, "layout version of this file (absent: 1, migrated on reading)");
    v("model", model, "architecture");
    v("train", train, "optimisation schedule and training data");
    v("inference", inference, "detection and search at test time");
    v("dataset", dataset, "data");
  }
};

/// Reads a YAML config file: resolves `_base_` (a path or list of paths relative to the
/// file, merged first, later files winning; maps merge key by key, everything else is
/// replaced), applies `overrides` ("train.lr=0.003", the value in YAML syntax, e.g.
/// "train.milestones=[8, 10]") in order, then checks every key and type and validates
/// ranges. Keys not given keep the defaults of the structs above.
/// Throws ConfigError (one line, naming the file or override) on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// As load_config, from YAML text (e.g. the copy a checkpoint carries). `source` names it
/// in error messages; `_base_` paths are relative to the current directory.
Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

/// The complete configuration as YAML (every key, in the order of the visit lists), such
/// that parse_config(to_yaml(c)) == c.
std::string to_yaml(const Config& config);

/// Range and consistency checks (thresholds in [0, 1], increasing milestones, one anchor
/// list per feature map, ...). Throws ConfigError naming the key; load_config calls it.
void validate(const Config& config, const std::string& source = "config");

/// One documented key: its dotted path ("train.lr"), its default as YAML text and its
/// description; sections are listed too (default empty).
struct KeyInfo {
  std::string path;
  std::string default_value;
  std::string doc;
  bool is_section = false;
};
/// Every key of Config, depth first in file order.
std::vector<KeyInfo> describe_keys();

/// The keys whose values differ, as "train.lr: <b's value> -> <a's value>", in file order.
std::vector<std::string> differing_keys(const Config& a, const Config& b);

bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

}  // namespace psearch::config
