#include "psearch/modeling/baseline/resnet_roi_embedder.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <stdexcept>

#include "psearch/data/image_io.h"
#include "psearch/ops/ops.h"

namespace psearch::modeling {

double resize_scale(int64_t height, int64_t width, int64_t min_size, int64_t max_size) {
  const double shorter = std::min(height, width), longer = std::max(height, width);
  return std::min(min_size / shorter, max_size / longer);
}

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
  const double scale = resize_scale(image.size(1), image.size(2), options_.min_size(), options_.max_size());
  at::Tensor input = data::normalize_imagenet(image.to(options_.device())).unsqueeze(0);
  if (scale != 1.0)
    input = at::upsample_bilinear2d(input, {static_cast<int64_t>(image.size(1) * scale + 0.5),
                                            static_cast<int64_t>(image.size(2) * scale + 0.5)},
                                    /*align_corners=*/false);
  if (boxes.size(0) == 0) return at::empty({0, 2048}, image.options());
  const at::Tensor c4 = backbone_->forward(input).at("C4");
  const at::Tensor rois =
      at::cat({at::full({boxes.size(0), 1}, 0.0f, c4.options()), boxes.to(c4.options()) * scale}, 1);
  const at::Tensor pooled = ops::roi_align(c4, rois, 1.0 / 16, 14, 14, 0, false);
  at::Tensor features = backbone_->layer(4)->forward(pooled).mean({2, 3});
  features = features / at::linalg_vector_norm(features, 2, {1}, true).clamp_min(1e-12);
  return features.cpu();
}

}  // namespace psearch::modeling
