#include "psearch/data/video.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/videoio.hpp>

#include <filesystem>
#include <stdexcept>

namespace psearch::data {

VideoReader::VideoReader(const std::string& path) : path_(path), capture_(std::make_unique<cv::VideoCapture>()) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error(path + ": no such file");
  // A file no backend decodes makes every backend log its own failure (GStreamer warnings,
  // the image-sequence backend's exception); our one-line error below says it all.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  if (!capture_->open(path) || !capture_->isOpened())
    throw std::runtime_error(path + ": not a video that OpenCV can decode");
  frame_count_ = static_cast<int64_t>(capture_->get(cv::CAP_PROP_FRAME_COUNT));
  fps_ = capture_->get(cv::CAP_PROP_FPS);
  width_ = static_cast<int64_t>(capture_->get(cv::CAP_PROP_FRAME_WIDTH));
  height_ = static_cast<int64_t>(capture_->get(cv::CAP_PROP_FRAME_HEIGHT));
}

VideoReader::~VideoReader() = default;

bool VideoReader::next(VideoFrame& frame, int64_t stride) {
  if (stride < 1) throw std::invalid_argument("frame stride must be at least 1");
  while (next_index_ % stride != 0) {
    if (!capture_->grab()) return false;
    ++next_index_;
  }
  cv::Mat bgr;
  if (!capture_->read(bgr) || bgr.empty()) return false;
  if (bgr.type() != CV_8UC3) throw std::runtime_error(path_ + ": frame " + std::to_string(next_index_) + " is not 8-bit colour");
  frame.index = next_index_++;
  frame.timestamp = fps_ > 0 ? frame.index / fps_ : 0.0;
  frame.image = rgb_tensor_from_bgr(bgr.data, bgr.rows, bgr.cols);
  return true;
}

bool VideoReader::skip_to(int64_t index) {
  while (next_index_ < index) {
    if (!capture_->grab()) return false;
    ++next_index_;
  }
  return true;
}

at::Tensor rgb_tensor_from_bgr(const void* data, int64_t height, int64_t width) {
  const at::Tensor hwc = at::from_blob(const_cast<void*>(data), {height, width, 3}, at::kByte);
  // BGR -> RGB by reversing the channel axis, then [3, H, W] in [0, 1]; the copy owns its memory.
  return hwc.flip({2}).permute({2, 0, 1}).to(at::kFloat).div(255.0).contiguous();
}

}  // namespace psearch::data
