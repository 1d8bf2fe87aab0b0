#include "psearch/modeling/input/image_transform.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

#include "psearch/config/config.h"
#include "psearch/util/traceable.h"

namespace psearch::modeling {

namespace {

void check_boxes(const at::Tensor& boxes, const char* where) {
  TORCH_CHECK(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4, where,
              ": boxes must be [K, 4] (x1, y1, x2, y2), got ",
              boxes.defined() ? boxes.sizes() : at::IntArrayRef{});
  TORCH_CHECK(boxes.is_floating_point(), where, ": boxes must be floating point, got ", boxes.scalar_type());
}

void check_image(const at::Tensor& image, int64_t channels, const char* where) {
  TORCH_CHECK(image.defined() && image.dim() == 3 && image.size(0) == channels, where, ": expected an image [",
              channels, ", H, W], got ", image.defined() ? image.sizes() : at::IntArrayRef{});
  TORCH_CHECK(image.size(1) > 0 && image.size(2) > 0, where, ": image has an empty side: ", image.sizes());
  // As torchvision: integer images (0..255) would be normalised wrongly without a word.
  TORCH_CHECK(image.is_floating_point(), where, ": images must be floating point RGB in [0, 1], got ",
              image.scalar_type());
}

ImageTransformOptions sized(int64_t min_size, int64_t max_size) {
  return ImageTransformOptions().min_size(min_size).max_size(max_size);
}

}  // namespace

ImageTransformOptions image_transform_options_from_config(const config::TrainConfig& config) {
  return sized(config.min_size, config.max_size);
}

ImageTransformOptions image_transform_options_from_config(const config::InferenceConfig& config) {
  return sized(config.min_size, config.max_size);
}

std::array<int64_t, 2> detection_resize_size(int64_t height, int64_t width, int64_t min_size, int64_t max_size) {
  TORCH_CHECK(height > 0 && width > 0, "detection_resize_size: empty image ", height, "x", width);
  const double shorter = static_cast<double>(std::min(height, width));
  const double longer = static_cast<double>(std::max(height, width));
  // torchvision computes the factor with Python floats (double), and F.interpolate with
  // recompute_scale_factor=True turns it into int(side * factor), i.e. floor for positive
  // sides; the kernel then recomputes the scale from the integer sizes (no scales passed).
  const double scale = std::min(static_cast<double>(min_size) / shorter, static_cast<double>(max_size) / longer);
  return {static_cast<int64_t>(static_cast<double>(height) * scale),
          static_cast<int64_t>(static_cast<double>(width) * scale)};
}

at::Tensor resize_boxes(const at::Tensor& boxes, std::array<int64_t, 2> from, std::array<int64_t, 2> to) {
  check_boxes(boxes, "resize_boxes");
  // torchvision divides float32 tensors; float division here rounds identically. The ratio
  // is applied as a 0-dim float32 tensor so type promotion matches too (float32 boxes stay
  // float32, float64 boxes multiply by the float32 ratio widened to double).
  const float ratio_h = static_cast<float>(to[0]) / static_cast<float>(from[0]);
  const float ratio_w = static_cast<float>(to[1]) / static_cast<float>(from[1]);
  const auto opts = boxes.options().dtype(at::kFloat);
  const at::Tensor rh = at::scalar_tensor(ratio_h, opts), rw = at::scalar_tensor(ratio_w, opts);
  const auto xyxy = boxes.unbind(1);
  return at::stack({xyxy[0] * rw, xyxy[1] * rh, xyxy[2] * rw, xyxy[3] * rh}, 1);
}

ImageTransform::ImageTransform(ImageTransformOptions options) : options_(std::move(options)) {
  TORCH_CHECK(options_.min_size() > 0 && options_.max_size() > 0, "ImageTransform: min_size and max_size must be > 0, got ",
              options_.min_size(), " and ", options_.max_size());
  TORCH_CHECK(options_.size_divisible() > 0, "ImageTransform: size_divisible must be > 0, got ",
              options_.size_divisible());
  TORCH_CHECK(!options_.mean().empty() && options_.mean().size() == options_.std().size(),
              "ImageTransform: mean and std must have one value per channel, got ", options_.mean().size(), " and ",
              options_.std().size());
}

at::Tensor ImageTransform::normalize(const at::Tensor& image) const {
  const auto channels = static_cast<int64_t>(options_.mean().size());
  check_image(image, channels, "ImageTransform");
  // mean/std in the image's dtype (float32 values of the doubles), as torch.as_tensor does.
  const at::Tensor mean = util::host_tensor(options_.mean(), image.options()).view({channels, 1, 1});
  const at::Tensor std = util::host_tensor(options_.std(), image.options()).view({channels, 1, 1});
  return (image - mean) / std;
}

at::Tensor ImageTransform::resize(const at::Tensor& image) const {
  TORCH_CHECK(image.dim() == 3, "ImageTransform::resize: expected [C, H, W], got ", image.sizes());
  const auto size = detection_resize_size(image.size(1), image.size(2), options_.min_size(), options_.max_size());
  // torchvision interpolates even when the size does not change; that is the identity.
  return at::upsample_bilinear2d(image.unsqueeze(0), {size[0], size[1]}, /*align_corners=*/false).squeeze(0);
}

at::Tensor ImageTransform::batch_images(const std::vector<at::Tensor>& images) const {
  TORCH_CHECK(!images.empty(), "ImageTransform: no images to batch");
  int64_t c = images[0].size(0), h = 0, w = 0;
  for (const auto& img : images) {
    TORCH_CHECK(img.dim() == 3 && img.size(0) == c, "ImageTransform::batch_images: images must be [", c,
                ", h, w], got ", img.sizes());
    h = std::max(h, img.size(1));
    w = std::max(w, img.size(2));
  }
  const auto stride = static_cast<double>(options_.size_divisible());
  h = static_cast<int64_t>(std::ceil(static_cast<double>(h) / stride) * stride);
  w = static_cast<int64_t>(std::ceil(static_cast<double>(w) / stride) * stride);
  // Zero padding at the bottom and right as an operator, not a copy into a slice of a
  // zero tensor: a traced graph (psearch export) keeps the image as its input, which an
  // in-place copy would hide from the ONNX exporter.
  std::vector<at::Tensor> padded;
  for (const auto& img : images) padded.push_back(at::constant_pad_nd(img, {0, w - img.size(2), 0, h - img.size(1)}, 0));
  return at::stack(padded);
}

TransformedBatch ImageTransform::operator()(const std::vector<at::Tensor>& images,
                                            const std::vector<at::Tensor>& boxes) const {
  TORCH_CHECK(!images.empty(), "ImageTransform: no images");
  TORCH_CHECK(boxes.empty() || boxes.size() == images.size(), "ImageTransform: ", images.size(), " images but ",
              boxes.size(), " box tensors (give one per image, or none)");
  TransformedBatch out;
  std::vector<at::Tensor> resized;
  resized.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor img = resize(normalize(images[i]));
    const std::array<int64_t, 2> original{images[i].size(1), images[i].size(2)};
    const std::array<int64_t, 2> now{img.size(1), img.size(2)};
    out.original_sizes.push_back(original);
    out.sizes.images.push_back(now);
    if (!boxes.empty()) out.boxes.push_back(resize_boxes(boxes[i], original, now));
    resized.push_back(img);
  }
  out.images = batch_images(resized);
  out.sizes.batch = {out.images.size(2), out.images.size(3)};
  return out;
}

std::vector<at::Tensor> ImageTransform::postprocess(const std::vector<at::Tensor>& boxes,
                                                    const std::vector<std::array<int64_t, 2>>& image_sizes,
                                                    const std::vector<std::array<int64_t, 2>>& original_sizes) const {
  TORCH_CHECK(boxes.size() == image_sizes.size() && boxes.size() == original_sizes.size(),
              "ImageTransform::postprocess: ", boxes.size(), " box tensors, ", image_sizes.size(), " image sizes and ",
              original_sizes.size(), " original sizes; they must match");
  std::vector<at::Tensor> out;
  out.reserve(boxes.size());
  for (size_t i = 0; i < boxes.size(); ++i) out.push_back(resize_boxes(boxes[i], image_sizes[i], original_sizes[i]));
  return out;
}

FlipResult hflip(const at::Tensor& image, const at::Tensor& boxes) {
  TORCH_CHECK(image.defined() && image.dim() == 3, "hflip: expected an image [C, H, W], got ",
              image.defined() ? image.sizes() : at::IntArrayRef{});
  check_boxes(boxes, "hflip");
  const double width = static_cast<double>(image.size(2));
  const auto xyxy = boxes.unbind(1);
  // x1' = W - x2 and x2' = W - x1 keep x1' <= x2'.
  at::Tensor flipped_boxes = at::stack({width - xyxy[2], xyxy[1], width - xyxy[0], xyxy[3]}, 1);
  return {at::flip(image, {2}), flipped_boxes, true};
}

FlipResult random_hflip(const at::Tensor& image, const at::Tensor& boxes, double probability,
                        std::optional<at::Generator> generator) {
  TORCH_CHECK(probability >= 0.0 && probability <= 1.0, "random_hflip: probability must be in [0, 1], got ",
              probability);
  // Always one draw, whatever the probability, so the generator's stream does not depend on it.
  const double u = at::rand({1}, generator, at::TensorOptions().dtype(at::kDouble)).item<double>();
  if (u < probability) return hflip(image, boxes);
  check_boxes(boxes, "random_hflip");
  return {image, boxes, false};
}

}  // namespace psearch::modeling
