#include "psearch/data/image_io.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/tensor.h>

#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

namespace psearch::data {

at::Tensor read_image(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error(path + ": image file not found");
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error(path + ": image does not decode (corrupt or unsupported format)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  // from_blob does not own the pixels; permute + contiguous copies them out of the Mat.
  at::Tensor hwc = at::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, at::TensorOptions().dtype(at::kByte));
  return hwc.permute({2, 0, 1}).to(at::kFloat).div_(255.0f).contiguous();
}

at::Tensor normalize_imagenet(const at::Tensor& rgb) {
  TORCH_CHECK((rgb.dim() == 3 && rgb.size(0) == 3) || (rgb.dim() == 4 && rgb.size(1) == 3),
              "normalize_imagenet expects [3, H, W] or [B, 3, H, W], got ", rgb.sizes());
  const auto shape = rgb.dim() == 3 ? std::vector<int64_t>{3, 1, 1} : std::vector<int64_t>{1, 3, 1, 1};
  const auto opts = rgb.options();
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}, opts).view(shape);
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}, opts).view(shape);
  return (rgb - mean) / std;
}

}  // namespace psearch::data
