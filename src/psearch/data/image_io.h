#pragma once
/// Reading images into tensors: JPEG through libjpeg(-turbo) with every warning treated as
/// an error (a truncated or damaged frame is refused, not decoded half grey), other formats
/// through OpenCV.
#include <ATen/core/Tensor.h>

#include <string>

namespace psearch::data {

/// Decodes an image file (JPEG, PNG, ...) to float32 RGB in [0, 1], shape [3, H, W].
/// Throws std::runtime_error naming the path when the file is missing or does not decode,
/// and for a JPEG that libjpeg reports any problem with ("Premature end of JPEG file",
/// "Corrupt JPEG data: ..."): such a frame is refused, never used (docs/datasets.md).
at::Tensor read_image(const std::string& path);

/// ImageNet normalisation of [3, H, W] or [B, 3, H, W] RGB in [0, 1], as torchvision's
/// pretrained backbones expect (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
at::Tensor normalize_imagenet(const at::Tensor& rgb);

}  // namespace psearch::data
