#include "psearch/modeling/baseline/resnet_roi_embedder.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>

#include "psearch/modeling/input/image_transform.h"
#include "psearch/ops/ops.h"

namespace psearch::modeling {

ResNetRoIEmbedder::ResNetRoIEmbedder(const ResNetRoIEmbedderOptions& options) : options_(options) {
  backbone_ = ResNet(ResNetOptions().depth(50).last_stage("C4"));
  if (!options.weights().empty())
    load_torchvision_resnet(*backbone_, options.weights(), checkpoint::Strictness::kStrict);
  backbone_->eval();
  backbone_->to(options.device());
}

Detections ResNetRoIEmbedder::detect(const at::Tensor&) {
  throw std::logic_error(name() + " has no detector: evaluate it with ground-truth boxes");
}

at::Tensor ResNetRoIEmbedder::embed(const at::Tensor& image, const at::Tensor& boxes) {
  TORCH_CHECK(image.dim() == 3 && image.size(0) == 3, "embed expects an image [3, H, W], got ", image.sizes());
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "embed expects boxes [K, 4], got ", boxes.sizes());
  torch::NoGradGuard no_grad;
  if (boxes.size(0) == 0) return at::empty({0, 2048}, image.options());
  // The detectors' input transform (normalise, min/max-size resize, pad to 32), so that this
  // baseline sees its images exactly as the two-stage models do.
  const ImageTransform transform(ImageTransformOptions().min_size(options_.min_size()).max_size(options_.max_size()));
  const TransformedBatch batch =
      transform({image.to(options_.device(), at::kFloat)}, {boxes.to(options_.device(), at::kFloat)});
  const at::Tensor c4 = backbone_->forward(batch.images).at("C4");
  const at::Tensor rois = at::cat({at::full({boxes.size(0), 1}, 0.0f, c4.options()), batch.boxes[0]}, 1);
  const at::Tensor pooled = ops::roi_align(c4, rois, 1.0 / 16, 14, 14, 0, false);
  at::Tensor features = backbone_->layer(4)->forward(pooled).mean({2, 3});
  features = features / at::linalg_vector_norm(features, 2, {1}, true).clamp_min(1e-12);
  return features.cpu();
}

}  // namespace psearch::modeling
