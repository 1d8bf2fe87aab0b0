#include "psearch/modeling/separate/separate_pipeline.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>

#include <stdexcept>

#include "psearch/modeling/layers/normalize.h"
#include "psearch/modeling/model_registry.h"
#include "psearch/ops/ops.h"
#include "psearch/util/traceable.h"

namespace psearch::modeling {
namespace {

std::string or_default(const std::string& path, const std::string& name) {
  return path.empty() ? pretrained_weights_path(name) : path;
}

}  // namespace

SeparatePipelineImpl::SeparatePipelineImpl(const config::Config& config)
    : options_(config.model.separate), mean_(config.model.pixel_mean), std_(config.model.pixel_std) {
  const auto& input = options_.detector_input_size;
  detector_ = register_module(
      "detector", SSDLitePerson(SSDLitePersonOptions().input_size({input.at(0), input.at(1)}).score_thresh(
                      config.inference.score_thresh).max_detections(config.inference.detections_per_img)));
  embedder_ = register_module("embedder", MobileNetV2());
  const std::string detector_file = or_default(options_.detector_weights, kSSDLitePerson);
  require_pretrained(detector_file, kSSDLitePerson);
  load_ssdlite_person(*detector_, detector_file);
  load_backbone_weights(or_default(options_.embedder_weights, kMobileNetV2ImageNet));
  eval();
}

std::map<std::string, at::Tensor> SeparatePipelineImpl::forward_train(const std::vector<at::Tensor>&,
                                                                      const std::vector<TrainingTarget>&) {
  throw std::runtime_error(
      "model type 'separate' has nothing to train: its detector and embedder are pretrained (evaluate it with "
      "psearch eval --model separate)");
}

std::vector<Detections> SeparatePipelineImpl::detect(const std::vector<at::Tensor>& images) {
  std::vector<Detections> detections = detector_->detect(images);
  for (size_t i = 0; i < images.size(); ++i) detections[i].features = embed_boxes(images[i], detections[i].boxes);
  return detections;
}

std::vector<at::Tensor> SeparatePipelineImpl::embed(const std::vector<at::Tensor>& images,
                                                    const std::vector<at::Tensor>& boxes) {
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < images.size(); ++i) out.push_back(embed_boxes(images[i], boxes.at(i)));
  return out;
}

at::Tensor SeparatePipelineImpl::embed_boxes(const at::Tensor& image, const at::Tensor& boxes) {
  c10::NoGradGuard no_grad;
  const auto device = embedder_->parameters().front().device();
  const at::Tensor mean = util::host_tensor(mean_, at::kFloat).view({3, 1, 1}).to(device);
  const at::Tensor std = util::host_tensor(std_, at::kFloat).view({3, 1, 1}).to(device);
  const at::Tensor normalised = ((image.to(device, at::kFloat) - mean) / std).unsqueeze(0);
  const at::Tensor b = boxes.to(device, at::kFloat);
  // No branch on the box count and no count in a shape: a traced graph (psearch export)
  // must follow any number of boxes, none included.
  const at::Tensor rois = at::cat({at::zeros_like(b.narrow(1, 0, 1)), b}, 1);
  // Bilinear crops, several samples per output pixel where a box is larger than the crop.
  const at::Tensor crops = ops::roi_align(normalised, rois, 1.0, options_.crop_size.at(0), options_.crop_size.at(1),
                                          /*sampling_ratio=*/0, /*aligned=*/true);
  const at::Tensor maps = embedder_->forward(crops);
  return l2_normalize(maps.mean({2, 3})).cpu();
}

void SeparatePipelineImpl::load_backbone_weights(const std::string& path) {
  require_pretrained(path, kMobileNetV2ImageNet);
  load_torchvision_mobilenet_v2(*embedder_, path, checkpoint::Strictness::kStrict);
}

namespace {

std::vector<ModelType> separate_types() {
  auto build = [](const config::Config& c, int64_t) -> PersonSearchModel {
    return std::make_shared<SeparatePipelineImpl>(c);
  };
  return {{"separate", "separate",
           "pretrained SSDLite-MobileNetV2 person detector + ImageNet MobileNetV2 embedding of each box (no training)",
           {}, build}};
}

}  // namespace

PSEARCH_REGISTER_MODEL_TYPES(separate_types)

}  // namespace psearch::modeling
