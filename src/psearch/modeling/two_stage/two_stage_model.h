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
/// embedding_head.proj_res{4,5}.*, nae.rescaler.* (NAE, NAE+), and the OIM memory
/// reid_loss.{lut,cq,header_cq}.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

#include "psearch/modeling/backbone/resnet.h"
#include "psearch/modeling/losses/nae_loss.h"
#include "psearch/modeling/losses/nae_plus.h"
#include "psearch/modeling/losses/oim_loss.h"
#include "psearch/modeling/search_model.h"
#include "psearch/modeling/two_stage/embedding_head.h"
#include "psearch/modeling/two_stage/image_transform.h"
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

/// Weights of the loss terms in the total loss (config train.loss_weights).
struct TwoStageLossWeights {
  double rpn_objectness = 1.0;
  double rpn_box = 1.0;
  double box = 1.0;
  double detection = 1.0;
  double reid = 1.0;
};

struct TwoStageOptions {
  explicit TwoStageOptions(int64_t num_pids) : oim(num_pids) {}
  TwoStageHead head = TwoStageHead::kNae;
  ResNetOptions backbone = ResNetOptions().depth(50).freeze_at(1);
  RPNOptions rpn;
  /// Training sampling and, for inference, score_thresh / nms_thresh / detections_per_img.
  RoIBoxHeadOptions roi_heads;
  EmbeddingHeadOptions embedding;  ///< channels are filled in from the backbone
  int64_t pixel_size = 7;          ///< NAE+: k; must equal the conv5 map size (pooler / 2)
  OIMLossOptions oim;
  TwoStageLossWeights loss_weights;
  ImageTransformOptions train_transform;
  ImageTransformOptions test_transform;
  /// OIM-base: scale gallery embeddings by the person score (class-weighted similarity).
  bool cws = true;
};

/// Options from a whole experiment config. num_pids: OIM lookup-table rows when the
/// config's model.oim.num_pids is 0 (taken from the training split).
TwoStageOptions two_stage_options_from_config(const config::Config& config, int64_t num_pids);

/// Ground truth of one training image.
struct TrainingTarget {
  at::Tensor boxes;  ///< [G, 4] float32 (x1, y1, x2, y2) in the image's pixels (G may be 0)
  at::Tensor pids;   ///< int64 [G]: 0..num_pids-1 labeled identity, -1 unlabeled person
};

class TwoStageModelImpl : public torch::nn::Module {
 public:
  explicit TwoStageModelImpl(const TwoStageOptions& options);

  /// Training step forward (call train() first). images[i]: [3, H_i, W_i] RGB in [0, 1]
  /// (augmented already); targets[i] its ground truth. Returns the unweighted loss terms
  /// ("loss_objectness", "loss_rpn_box_reg", "loss_box_reg", "loss_detection",
  /// "loss_reid"; NAE+ adds nothing else) and "loss" = their weighted sum. The OIM memory is
  /// updated as a side effect.
  std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                  const std::vector<TrainingTarget>& targets);

  /// Gallery path for a batch of images of any sizes ([3, H_i, W_i] RGB in [0, 1]):
  /// detections in each input image's pixels with their embeddings. Call eval() first.
  std::vector<Detections> detect(const std::vector<at::Tensor>& images);

  /// Query path: boxes[i] [K_i, 4] in images[i]'s pixels -> [K_i, d] embeddings with unit
  /// norm (a query is known to be a person). Call eval() first.
  std::vector<at::Tensor> embed(const std::vector<at::Tensor>& images, const std::vector<at::Tensor>& boxes);

  const TwoStageOptions& options() const { return options_; }
  ResNet backbone() const { return backbone_; }
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

  TwoStageOptions options_;
  ImageTransform train_transform_, test_transform_;
  ResNet backbone_{nullptr};
  RegionProposalNetwork rpn_{nullptr};
  RoIBoxHead roi_heads_{nullptr};
  EmbeddingHead embedding_head_{nullptr};
  NormAwareEmbedding nae_{nullptr};
  PixelWiseNormAwareEmbedding nae_plus_{nullptr};
  OIMLoss reid_loss_{nullptr};
};
TORCH_MODULE(TwoStageModel);

/// SearchModel adapter (evaluation, indexing): runs the model in eval mode on its device,
/// without gradients.
class TwoStageSearchModel : public SearchModel {
 public:
  explicit TwoStageSearchModel(TwoStageModel model);

  std::string name() const override;
  bool has_detector() const override { return true; }
  Detections detect(const at::Tensor& image) override;
  at::Tensor embed(const at::Tensor& image, const at::Tensor& boxes) override;

  TwoStageModel model() const { return model_; }

 private:
  TwoStageModel model_;
  c10::Device device_;
};

}  // namespace psearch::modeling
