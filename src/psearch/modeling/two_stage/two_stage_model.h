#pragma once
/// The two-stage person-search models of the NAE paper: OIM-base, NAE and NAE+ on one
/// Faster R-CNN ResNet C4 trunk (docs/two_stage.md):
///
///   images -> ImageTransform -> ResNet conv1..conv4 (C4) -> RPN -> proposals
///   proposals -> RoIAlign(C4, 14x14) -> conv5 head (ResNet layer4) -> box regression
///                                                                  -> EmbeddingHead -> x
///   OIM-base: person score from a softmax classifier, embedding x / |x|, OIM on it;
///   NAE:      score r~ = sigmoid(BN(|x|)), angle x / |x| (OIM), gallery embedding r~ * angle;
///   NAE+:     per-pixel x on k x k, per-pixel scores (Eq. 6), pooled embedding, score
///             = mean pixel probability / its image's maximum.
///
/// Parameter names (state_dict keys): backbone.{conv1,bn1,layer1..layer3}.*, rpn.head.*,
/// roi_heads.{head,cls_score,bbox_pred,bbox_bn}.* (head = ResNet layer4),
/// (MobileNetV2 trunk: backbone.features.0..13.*, roi_heads.head.0..4.* = features.14..18),
/// embedding_head.proj_res{4,5}.*, nae.rescaler.* (NAE, NAE+), and the OIM memory
/// reid_loss.{lut,cq,header_cq}.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "psearch/modeling/backbone/resnet.h"
#include "psearch/modeling/losses/nae_loss.h"
#include "psearch/modeling/losses/nae_plus.h"
#include "psearch/modeling/losses/oim_loss.h"
#include "psearch/modeling/input/image_transform.h"
#include "psearch/modeling/input/training_target.h"
#include "psearch/modeling/person_search_model.h"
#include "psearch/modeling/two_stage/embedding_head.h"
#include "psearch/modeling/two_stage/roi_box_head.h"
#include "psearch/modeling/two_stage/rpn.h"

namespace psearch::config {
struct Config;
}

namespace psearch::modeling {

/// Which head sits on the trunk.
enum class TwoStageHead { kOim, kNae, kNaePlus };

/// "oim", "nae", "nae_plus" (the config's model.type).
TwoStageHead parse_two_stage_head(const std::string& name);
std::string two_stage_head_name(TwoStageHead head);

/// The loss terms of every two-stage model, in log order.
const std::vector<std::string>& two_stage_loss_names();

struct TwoStageOptions {
  explicit TwoStageOptions(int64_t num_pids) : oim(num_pids) {}
  TwoStageHead head = TwoStageHead::kNae;
  ResNetOptions backbone = ResNetOptions().depth(50).freeze_at(1);
  /// Set: a MobileNetV2 trunk (features.0 .. 13, stride 16, 96 channels) and RoI head
  /// (features.14 .. 18, 1280 channels) replace the ResNet.
  std::optional<MobileNetV2Options> mobilenet;
  RPNOptions rpn;
  /// Training sampling and, for inference, score_thresh / nms_thresh / detections_per_img.
  RoIBoxHeadOptions roi_heads;
  EmbeddingHeadOptions embedding;  ///< channels are filled in from the backbone
  int64_t pixel_size = 7;          ///< NAE+: k; must equal the conv5 map size (pooler / 2)
  OIMLossOptions oim;
  /// Loss name -> weight in the total loss (config train.loss_weights; unlisted: 1).
  std::map<std::string, double> loss_weights;
  ImageTransformOptions train_transform;
  ImageTransformOptions test_transform;
  /// OIM-base: scale gallery embeddings by the person score (class-weighted similarity).
  bool cws = true;
};

/// Options from a whole experiment config. num_pids: OIM lookup-table rows when the
/// config's model.oim.num_pids is 0 (taken from the training split).
TwoStageOptions two_stage_options_from_config(const config::Config& config, int64_t num_pids);

class TwoStageModelImpl : public PersonSearchModelImpl {
 public:
  /// Throws std::invalid_argument when the OIM table would have no identity.
  explicit TwoStageModelImpl(const TwoStageOptions& options);

  std::string type() const override;
  int64_t embedding_dim() const override { return options_.embedding.dim(); }
  int64_t num_pids() const override { return options_.oim.num_pids(); }
  std::vector<std::string> loss_names() const override { return two_stage_loss_names(); }

  /// Training step forward (call train() first): the loss terms of two_stage_loss_names()
  /// ("loss_objectness", "loss_rpn_box_reg", "loss_box_reg", "loss_detection",
  /// "loss_reid"; NAE+ adds nothing else) and their weighted sum "loss". The OIM memory is
  /// updated as a side effect.
  std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                  const std::vector<TrainingTarget>& targets) override;

  /// Gallery path for a batch of images of any sizes ([3, H_i, W_i] RGB in [0, 1]):
  /// detections in each input image's pixels with their embeddings. Call eval() first.
  std::vector<Detections> detect(const std::vector<at::Tensor>& images) override;

  /// Query path: boxes[i] [K_i, 4] in images[i]'s pixels -> [K_i, d] embeddings with unit
  /// norm (a query is known to be a person). Call eval() first.
  std::vector<at::Tensor> embed(const std::vector<at::Tensor>& images,
                                const std::vector<at::Tensor>& boxes) override;

  /// A torchvision ImageNet checkpoint of the trunk's architecture (ResNet, e.g.
  /// resnet50-0676ba61.pth: conv1 .. layer3 into backbone.*, layer4 into roi_heads.head.*;
  /// MobileNetV2, "imagenet" for set-up's file: features.0 .. 13 into backbone.*, 14 .. 18
  /// into roi_heads.head.0 .. 4); classifiers are dropped. Strict: every trunk tensor must
  /// be present with its shape.
  void load_backbone_weights(const std::string& path) override;

  /// The same type loads as is; a NAE checkpoint initialises NAE+ with its FC projections
  /// turned into 1x1 convs (NAE paper Sec. 4.2).
  void init_from(const std::string& source_type, checkpoint::TensorMap state, const std::string& path) override;

  const TwoStageOptions& options() const { return options_; }
  OIMLoss reid_loss() const { return reid_loss_; }
  EmbeddingHead embedding_head() const { return embedding_head_; }

 private:
  /// What the heads make of a set of RoIs.
  struct HeadOutput {
    at::Tensor box_regression;  ///< [K, 8]
    at::Tensor scores;          ///< [K] person probability (inference scores)
    at::Tensor query;           ///< [K, d] unit-norm embedding (query path, OIM input)
    at::Tensor gallery;         ///< [K, d] embedding of a detection (gallery path)
    at::Tensor class_logits;    ///< OIM-base: [K, 2]
    at::Tensor logits;          ///< NAE: [K]; NAE+: [K, 1, k, k] norm logits
  };
  HeadOutput run_heads(const at::Tensor& c4, const std::vector<at::Tensor>& rois);
  /// The trunk's stride-16 map [B, C, H / 16, W / 16] of a normalised batch.
  at::Tensor trunk_features(const at::Tensor& images);

  TwoStageOptions options_;
  ImageTransform train_transform_, test_transform_;
  ResNet backbone_{nullptr};          ///< the ResNet trunk, or
  MobileNetV2 mobilenet_{nullptr};    ///< the MobileNetV2 trunk
  RegionProposalNetwork rpn_{nullptr};
  RoIBoxHead roi_heads_{nullptr};
  EmbeddingHead embedding_head_{nullptr};
  NormAwareEmbedding nae_{nullptr};
  PixelWiseNormAwareEmbedding nae_plus_{nullptr};
  OIMLoss reid_loss_{nullptr};
};
TORCH_MODULE(TwoStageModel);

}  // namespace psearch::modeling
