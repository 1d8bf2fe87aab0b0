#pragma once
/// RetinaNet with the semantics and parameter names of torchvision 0.26's
/// retinanet_resnet50_fpn: ResNet + FPN (P3 .. P7, P6 from P5), a classification and a
/// regression tower of 4 x (3x3 conv + ReLU) shared by all levels, 3x3 predictors, 9
/// anchors per cell, focal loss + L1 box loss, torchvision's post-processing. A
/// torchvision RetinaNet state_dict (random weights in the tests, the COCO file
/// retinanet_resnet50_fpn_coco-eeacb38b.pth where a user has it) loads key for key and
/// gives the same detections.
///
/// It is the trunk PCNet is built on and the way PCNet starts from COCO weights; on its
/// own it is a generic detector (`psearch detect`), not a person-search model.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/modeling/backbone/fpn.h"
#include "psearch/modeling/input/image_transform.h"
#include "psearch/modeling/one_stage/dense_detection.h"

namespace psearch::modeling {

/// torchvision's RetinaNetClassificationHead (names conv.<i>.0.*, cls_logits.*) and
/// RetinaNetRegressionHead (conv.<i>.0.*, bbox_reg.*) in one module per tower.
class RetinaNetTowerImpl : public torch::nn::Module {
 public:
  /// outputs_per_anchor: K classes (classification) or 4 (regression). Initialised as
  /// torchvision: weights N(0, 0.01), biases 0, the class logits' bias -log((1 - p) / p)
  /// with prior p = 0.01.
  RetinaNetTowerImpl(int64_t channels, int64_t num_convs, int64_t num_anchors, int64_t outputs_per_anchor,
                     const std::string& predictor_name, double prior_probability = -1);

  /// features[l]: [B, C, H_l, W_l] -> [B, sum_l H_l * W_l * A, outputs_per_anchor].
  at::Tensor forward(const std::vector<at::Tensor>& features);

 private:
  torch::nn::Sequential conv_{nullptr};
  torch::nn::Conv2d predictor_{nullptr};
  int64_t outputs_per_anchor_;
};
TORCH_MODULE(RetinaNetTower);

struct RetinaNetOptions {
  TORCH_ARG(BackboneWithFPNOptions, backbone) = BackboneWithFPNOptions().resnet(ResNetOptions().depth(50));
  /// Classes of the sigmoid classifier (torchvision's COCO models: 91).
  TORCH_ARG(int64_t, num_classes) = 91;
  TORCH_ARG(int64_t, num_convs) = 4;
  TORCH_ARG(DenseDetectionOptions, detection);
  TORCH_ARG(ImageTransformOptions, transform) = ImageTransformOptions().min_size(800).max_size(1333);
};

/// Detections of one image in its own pixels.
struct LabeledDetections {
  at::Tensor boxes;   ///< [N, 4] float32 (x1, y1, x2, y2)
  at::Tensor scores;  ///< [N]
  at::Tensor labels;  ///< int64 [N]
};

class RetinaNetImpl : public torch::nn::Module {
 public:
  explicit RetinaNetImpl(const RetinaNetOptions& options = {});

  /// Evaluation (call eval() first): images[i] [3, H_i, W_i] RGB in [0, 1], any sizes.
  std::vector<LabeledDetections> detect(const std::vector<at::Tensor>& images);

  /// Training: boxes[i] [G_i, 4] in images[i]'s pixels, labels[i] int64 [G_i]. Returns
  /// "loss_cls", "loss_box_reg" and their sum "loss".
  std::map<std::string, at::Tensor> forward_train(const std::vector<at::Tensor>& images,
                                                  const std::vector<at::Tensor>& boxes,
                                                  const std::vector<at::Tensor>& labels);

  /// The head outputs of a transformed batch, and the pyramid they came from.
  DensePredictions predict(const std::vector<at::Tensor>& features);

  BackboneWithFPN backbone() const { return backbone_; }
  const DenseDetector& detector() const { return detector_; }
  const ImageTransform& transform() const { return transform_; }
  const RetinaNetOptions& options() const { return options_; }

 private:
  RetinaNetOptions options_;
  DenseDetector detector_;
  ImageTransform transform_;
  BackboneWithFPN backbone_{nullptr};
  std::shared_ptr<torch::nn::Module> head_;
  RetinaNetTower classification_{nullptr};
  RetinaNetTower regression_{nullptr};
};
TORCH_MODULE(RetinaNet);

/// Loads a torchvision RetinaNet state_dict (backbone.body.*, backbone.fpn.*,
/// head.classification_head.*, head.regression_head.*; "num_batches_tracked" counters of
/// BatchNorm-trained files are dropped) into `model`. Throws std::runtime_error with one
/// line naming `path` when the file is another kind of checkpoint (a ResNet classifier, a
/// Faster R-CNN), or listing each offending key when it does not fit.
checkpoint::LoadReport load_torchvision_retinanet(RetinaNetImpl& model, const std::string& path,
                                                  checkpoint::Strictness strictness = checkpoint::Strictness::kStrict);

}  // namespace psearch::modeling
