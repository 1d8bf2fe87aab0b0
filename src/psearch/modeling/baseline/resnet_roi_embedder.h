#pragma once
/// A re-identification-only baseline: ResNet-50 features of given boxes (RoIAlign on C4,
/// then layer4 as the conv5 head, global average pooling, L2 normalisation), the trunk that
/// OIM / NAE fine-tune. With ImageNet weights this is the classic "ground-truth boxes +
/// ImageNet features" reference point; it has no detector.
#include <c10/core/Device.h>

#include <string>

#include "psearch/modeling/backbone/resnet.h"
#include "psearch/modeling/search_model.h"

namespace psearch::modeling {

struct ResNetRoIEmbedderOptions {
  /// torchvision ResNet-50 checkpoint; empty = random initialisation (seeded by the caller).
  TORCH_ARG(std::string, weights) = "";
  /// Images are resized so the shorter side is min_size, unless the longer side would
  /// then exceed max_size (the detectors' convention; papers use 900 / 1500), with the
  /// detectors' ImageTransform (two_stage/image_transform.h).
  TORCH_ARG(int64_t, min_size) = 900;
  TORCH_ARG(int64_t, max_size) = 1500;
  TORCH_ARG(c10::Device, device) = c10::Device(c10::kCPU);
};

class ResNetRoIEmbedder : public SearchModel {
 public:
  explicit ResNetRoIEmbedder(const ResNetRoIEmbedderOptions& options);

  std::string name() const override { return "resnet50-roi"; }
  bool has_detector() const override { return false; }
  /// Throws: this baseline has no detector (evaluate it on ground-truth boxes).
  Detections detect(const at::Tensor& image) override;
  at::Tensor embed(const at::Tensor& image, const at::Tensor& boxes) override;

 private:
  ResNetRoIEmbedderOptions options_;
  ResNet backbone_{nullptr};
};

}  // namespace psearch::modeling
