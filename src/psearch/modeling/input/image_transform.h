#pragma once
/// The detector's input transform, with the semantics of torchvision 0.26's
/// torchvision.models.detection.transform.GeneralizedRCNNTransform (evaluation mode, one
/// min_size): normalise each image, resize it so that its shorter side is min_size unless
/// its longer side would then exceed max_size, scale its boxes alike, and batch the images
/// into one zero-padded tensor whose H and W are multiples of size_divisible. postprocess()
/// maps detections back to the original images. Also the training-time horizontal flip.
///
/// Images are RGB in [0, 1], [3, H, W], floating point; boxes are (x1, y1, x2, y2) in
/// pixels, [K, 4], floating point.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "psearch/modeling/input/image_sizes.h"

namespace psearch::config {
struct TrainConfig;
struct InferenceConfig;
}  // namespace psearch::config

namespace psearch::modeling {

struct ImageTransformOptions {
  /// Shorter side after resizing, and the bound on the longer side (pixels); NAE: 900x1500.
  TORCH_ARG(int64_t, min_size) = 900;
  TORCH_ARG(int64_t, max_size) = 1500;
  /// Per-channel normalisation, (x - mean) / std; default ImageNet's, as the backbones expect.
  TORCH_ARG(std::vector<double>, mean) = {0.485, 0.456, 0.406};
  TORCH_ARG(std::vector<double>, std) = {0.229, 0.224, 0.225};
  /// The padded batch's H and W are rounded up to a multiple of this (32 in torchvision).
  TORCH_ARG(int64_t, size_divisible) = 32;
};

/// The sizes a config section asks for (train.* for training, inference.* for evaluation).
ImageTransformOptions image_transform_options_from_config(const config::TrainConfig& config);
ImageTransformOptions image_transform_options_from_config(const config::InferenceConfig& config);

/// A batch ready for the detector.
struct TransformedBatch {
  /// [B, 3, H, W] normalised, resized images, zero-padded at the bottom and right.
  at::Tensor images;
  /// (H, W) of `images` and (h_i, w_i) of each resized image inside it, as the RPN takes them.
  ImageSizes sizes;
  /// (H_i, W_i) of each input image, for postprocess().
  std::vector<std::array<int64_t, 2>> original_sizes;
  /// Per image [K_i, 4] the input boxes in resized pixels; empty when no boxes were given.
  std::vector<at::Tensor> boxes;
};

/// Output size (h, w) of resizing an (height, width) image as torchvision does: the scale
/// min(min_size / shorter, max_size / longer) in double precision, then each side
/// floor(side * scale) (F.interpolate with recompute_scale_factor=True).
std::array<int64_t, 2> detection_resize_size(int64_t height, int64_t width, int64_t min_size, int64_t max_size);

/// Boxes [K, 4] of an image of size `from` (h, w) scaled to size `to` (h, w): x by
/// float32(to_w) / float32(from_w), y by the height ratio, as torchvision's resize_boxes
/// (the ratios are float32 there too, so the results are identical).
at::Tensor resize_boxes(const at::Tensor& boxes, std::array<int64_t, 2> from, std::array<int64_t, 2> to);

class ImageTransform {
 public:
  explicit ImageTransform(ImageTransformOptions options = {});

  /// Normalises, resizes and batches `images` (each [3, H_i, W_i], any sizes, at least one);
  /// `boxes`, when not empty, holds one [K_i, 4] tensor per image, resized with it.
  TransformedBatch operator()(const std::vector<at::Tensor>& images, const std::vector<at::Tensor>& boxes = {}) const;

  /// (image - mean) / std per channel, [3, H, W] -> [3, H, W], in the image's dtype.
  at::Tensor normalize(const at::Tensor& image) const;
  /// Bilinear resize (align_corners=False) of [C, H, W] to detection_resize_size.
  at::Tensor resize(const at::Tensor& image) const;
  /// Stacks [C, h_i, w_i] images into a zero tensor [B, C, H, W], H and W the largest h_i,
  /// w_i rounded up to size_divisible; each image at the top left.
  at::Tensor batch_images(const std::vector<at::Tensor>& images) const;
  /// Per image, detection boxes [K_i, 4] in the resized image (sizes.images[i]) mapped back
  /// to the original image (original_sizes[i]).
  std::vector<at::Tensor> postprocess(const std::vector<at::Tensor>& boxes,
                                      const std::vector<std::array<int64_t, 2>>& image_sizes,
                                      const std::vector<std::array<int64_t, 2>>& original_sizes) const;

  const ImageTransformOptions& options() const { return options_; }

 private:
  ImageTransformOptions options_;
};

/// An image and its boxes after the flip augmentation.
struct FlipResult {
  at::Tensor image;  ///< [C, H, W]
  at::Tensor boxes;  ///< [K, 4]
  bool flipped = false;
};

/// Mirrors image [C, H, W] left-right and its boxes [K, 4]: x1' = W - x2, x2' = W - x1 (box
/// coordinates are continuous, so pixel column c covers [c, c + 1) and maps to W - 1 - c).
FlipResult hflip(const at::Tensor& image, const at::Tensor& boxes);

/// hflip with probability `probability` (one uniform draw from `generator`, or from the
/// default CPU generator when none is given, so that a seeded generator gives the same
/// flips run after run); otherwise the inputs unchanged.
FlipResult random_hflip(const at::Tensor& image, const at::Tensor& boxes, double probability = 0.5,
                        std::optional<at::Generator> generator = std::nullopt);

}  // namespace psearch::modeling
