#pragma once
/// Reading images into tensors: JPEG through libjpeg(-turbo) with every warning treated as
/// an error (a truncated or damaged frame is refused, not decoded half grey), other formats
/// through OpenCV.
#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

namespace psearch::data {

/// Decodes an image file (JPEG, PNG, ...) to float32 RGB in [0, 1], shape [3, H, W].
/// Throws std::runtime_error naming the path when the file is missing or does not decode,
/// and for a JPEG that libjpeg reports any problem with ("Premature end of JPEG file",
/// "Corrupt JPEG data: ..."): such a frame is refused, never used (docs/datasets.md).
at::Tensor read_image(const std::string& path);

/// Decodes an encoded image held in memory (an upload) exactly as read_image decodes a
/// file; `what` names it in errors ("<what>: damaged JPEG, refused: ...").
at::Tensor decode_image(const std::vector<unsigned char>& bytes, const std::string& what);

/// [3, H, W] RGB in [0, 1] -> an 8-bit BGR OpenCV image (values outside [0, 1] clipped),
/// for drawing and encoding with OpenCV.
cv::Mat bgr_image(const at::Tensor& rgb);

/// ImageNet normalisation of [3, H, W] or [B, 3, H, W] RGB in [0, 1], as torchvision's
/// pretrained backbones expect (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
at::Tensor normalize_imagenet(const at::Tensor& rgb);

}  // namespace psearch::data
