#pragma once
/// PCNet, the one-stage person-search model of "Points in Context for Efficient Person
/// Search" (Zhong et al.): RetinaNet on ResNet + FPN (P3 .. P7) whose serialized head
/// (pcnet_head.h) computes re-id features by Contextual Points Pooling before the detection
/// towers, and whose re-id feature of a person is the Cross Scale Aggregation
/// (cross_scale_aggregation.h) of its point feature with the pyramid cells inside its box.
/// PCNet (one tall anchor per cell), PCNet-dagger (4 anchors) and PCNet light (towers of
/// width 64, shared) are configurations of this one model type, "pcnet"
/// (configs/pcnet_*.yaml; docs/pcnet.md).
///
/// Training (Sec. 3.3): anchors assigned as RetinaNet (IoU >= 0.5 positive, < 0.4
/// negative, every person keeps its best anchors); for every positive anchor its point
/// feature f' (Eq. 7) and its CSA feature f (Eq. 8) inside the matched ground-truth box;
/// losses, each divided by N, the positives of the batch (Eq. 14):
///   loss_cls      sigmoid focal loss over all non-ignored anchors
///   loss_box_reg  smooth L1 of the positives' box codes
///   loss_reid     OIM on normalize(BN(f)) (Eq. 13; a mean over labeled positives)
///   loss_dist     distance loss of the positives' CPP points (Eq. 6; 0 without CPP)
///   loss_triplet  the triplet variant (Eq. 11), f against f'
/// Parameter names: backbone.body.* (ResNet), backbone.fpn.* (torchvision's names, so a
/// torchvision RetinaNet checkpoint initialises the trunk), head.*, csa.*, reid_bn.*,
/// point_bn.*, reid_loss.{lut,cq,header_cq}.
///
/// Inference: detect, NMS, then per kept detection f' = the point feature of its anchor
/// (or, with gallery aggregation, the mean over the pre-NMS candidates overlapping it) and
/// f = CSA inside the detected box; embeddings are normalize(BN(f)). Queries run the whole
/// query frame: f' is the mean point feature of the anchors whose decoded boxes overlap
/// the query box (or the best one), f = CSA inside the query box.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "psearch/config/config.h"
#include "psearch/modeling/backbone/fpn.h"
#include "psearch/modeling/input/image_transform.h"
#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/losses/oim_loss.h"
#include "psearch/modeling/one_stage/cross_scale_aggregation.h"
#include "psearch/modeling/one_stage/dense_detection.h"
#include "psearch/modeling/one_stage/pcnet_head.h"
#include "psearch/modeling/person_search_model.h"

namespace psearch::modeling {

/// The loss terms of PCNet, in log order.
const std::vector<std::string>& pcnet_loss_names();

/// What the trunk and head compute for a transformed batch.
struct PCNetForward {
  TransformedBatch batch;
  PCNetHeadOutput head;
  at::Tensor anchors;  ///< [T, 4] of one image
  PyramidCells cells(int64_t image, const std::vector<int64_t>& strides) const {
    return pyramid_cells(head.cell_features, strides, image);
  }
};

/// Where CPP samples for each detection of one image (the paper's Fig. 5).
struct CppPoints {
  at::Tensor boxes;   ///< [N, 4] detections in the input image's pixels
  at::Tensor scores;  ///< [N]
  at::Tensor points;  ///< [N, 9, 2] (x, y) of the 9 sampling points in the input image's pixels,
                      ///< kernel taps row-major (rows 0-2 are the top, middle and bottom sets)
};

class PCNetModelImpl : public PersonSearchModelImpl {
 public:
  /// A model as config.model (type "pcnet", section model.one_stage) says; num_pids: OIM
  /// identities when model.oim.num_pids is 0. Throws std::invalid_argument when the OIM
  /// table would have no identity.
  PCNetModelImpl(const config::Config& config, int64_t num_pids);

  std::string type() const override { return "pcnet"; }
  int64_t embedding_dim() const override { return config_.model.embedding_dim; }
  int64_t num_pids() const override { return reid_loss_->options().num_pids(); }
  std::vector<std::string> loss_names() const override { return pcnet_loss_names(); }

  std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                  const std::vector<TrainingTarget>& targets) override;
  std::vector<Detections> detect(const std::vector<at::Tensor>& images) override;
  std::vector<at::Tensor> embed(const std::vector<at::Tensor>& images, const std::vector<at::Tensor>& boxes) override;

  /// A torchvision ImageNet ResNet file (into backbone.body) or a torchvision RetinaNet file
  /// such as the COCO retinanet_resnet50_fpn (backbone.body and backbone.fpn; its head,
  /// built for 9 anchors and 91 classes, is not used).
  void load_backbone_weights(const std::string& path) override;

  /// The detections of `image` ([3, H, W] RGB in [0, 1]; eval mode) with the sampling
  /// points of their anchor's CPP: tap (r, c) of the anchor at cell (row, col) of a level of
  /// stride s samples at ((col + c - 1 + dx) s + s / 2, (row + r - 1 + dy) s + s / 2) in the
  /// resized image, mapped back to the input image. Throws std::invalid_argument without CPP.
  CppPoints sampling_points(const at::Tensor& image);

  /// The trunk, the head and the anchors of a batch (no losses, no post-processing).
  PCNetForward run(const std::vector<at::Tensor>& images, const std::vector<at::Tensor>& boxes,
                   const ImageTransform& transform);

  /// Embeddings normalize(BN(f)) of CSA features f [N, D] (BN in its current mode; a
  /// training batch of one row uses the running statistics).
  at::Tensor embeddings(const at::Tensor& csa_features);

  const config::Config& config() const { return config_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  BackboneWithFPN backbone() const { return backbone_; }
  PCNetHead head() const { return head_; }
  const DenseDetector& detector() const { return detector_; }
  const ImageTransform& test_transform() const { return test_transform_; }

 private:
  /// f (CSA, or f' when CSA is off) of point features [N, D] with boxes [N, 4] in image i.
  at::Tensor aggregate(const PCNetForward& f, int64_t image, const at::Tensor& point_features, const at::Tensor& boxes);
  DensePredictions predictions(const PCNetHeadOutput& head) const;

  config::Config config_;
  DenseDetector detector_;
  ImageTransform train_transform_;
  ImageTransform test_transform_;
  std::vector<int64_t> strides_;
  BackboneWithFPN backbone_{nullptr};
  PCNetHead head_{nullptr};
  CrossScaleAggregation csa_{nullptr};
  BatchNorm reid_bn_{nullptr};
  BatchNorm point_bn_{nullptr};
  OIMLoss reid_loss_{nullptr};
};
TORCH_MODULE(PCNetModel);

/// The detector options model.one_stage and inference.* ask for.
DenseDetectionOptions pcnet_detection_options(const config::Config& config);

}  // namespace psearch::modeling
