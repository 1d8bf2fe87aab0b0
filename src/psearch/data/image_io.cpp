#include "psearch/data/image_io.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/tensor.h>

#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include <jpeglib.h>

namespace psearch::data {

namespace {

/// libjpeg reports errors through callbacks; this one remembers the message and jumps back.
struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

/// Warnings (level -1: truncated file, corrupt data) are errors here; trace messages
/// (level >= 0) are ignored instead of printed.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);
}

/// Decodes JPEG `bytes` to interleaved RGB in `rgb`. Returns an empty string or libjpeg's
/// message. No object with a destructor lives in this frame across setjmp/longjmp.
std::string decode_jpeg(const std::vector<unsigned char>& bytes, std::vector<unsigned char>& rgb, int& width,
                        int& height) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpeg_fail;
  errors.manager.emit_message = jpeg_message;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return errors.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  width = static_cast<int>(cinfo.output_width);
  height = static_cast<int>(cinfo.output_height);
  rgb.resize(static_cast<size_t>(width) * height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = rgb.data() + static_cast<size_t>(cinfo.output_scanline) * width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);  // reads up to the end marker: a truncated file warns here
  jpeg_destroy_decompress(&cinfo);
  return {};
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open image file");
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// [H, W, 3] uint8 RGB pixels -> [3, H, W] float in [0, 1] (copies out of `pixels`).
at::Tensor to_chw_float(unsigned char* pixels, int height, int width) {
  at::Tensor hwc = at::from_blob(pixels, {height, width, 3}, at::TensorOptions().dtype(at::kByte));
  return hwc.permute({2, 0, 1}).to(at::kFloat).div_(255.0f).contiguous();
}

}  // namespace

at::Tensor read_image(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error(path + ": image file not found");
  return decode_image(read_bytes(path), path);
}

at::Tensor decode_image(const std::vector<unsigned char>& bytes, const std::string& path) {
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    std::vector<unsigned char> rgb;
    int width = 0, height = 0;
    const std::string problem = decode_jpeg(bytes, rgb, width, height);
    if (!problem.empty()) throw std::runtime_error(path + ": damaged JPEG, refused: " + problem);
    return to_chw_float(rgb.data(), height, width);
  }
  cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (bgr.empty()) throw std::runtime_error(path + ": image does not decode (corrupt or unsupported format)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return to_chw_float(rgb.data, rgb.rows, rgb.cols);
}

cv::Mat bgr_image(const at::Tensor& rgb) {
  const at::Tensor hwc = (rgb.clamp(0, 1) * 255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  const cv::Mat view(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr());
  cv::Mat bgr;  // cvtColor copies out of `hwc`
  cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);
  return bgr;
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
