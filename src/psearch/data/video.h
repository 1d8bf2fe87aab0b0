#pragma once
/// Reading frames of a video file (anything OpenCV's videoio decodes: AVI, MP4, MKV ...)
/// or of a single image, as RGB tensors, with their index and timestamp.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace cv {
class VideoCapture;
}

namespace psearch::data {

struct VideoFrame {
  int64_t index = 0;       ///< 0-based frame number in the file
  double timestamp = 0.0;  ///< seconds from the start (index / fps)
  at::Tensor image;        ///< [3, H, W] float32 RGB in [0, 1]
};

class VideoReader {
 public:
  /// Throws std::runtime_error "<path>: ..." when the file is missing or no decoder opens it.
  explicit VideoReader(const std::string& path);
  ~VideoReader();

  /// Frames the container announces (may be an estimate; reading stops at the real end).
  int64_t frame_count() const { return frame_count_; }
  double fps() const { return fps_; }
  int64_t width() const { return width_; }
  int64_t height() const { return height_; }

  /// The next frame whose index is a multiple of `stride` (frames in between are grabbed,
  /// not decoded). False at the end of the file.
  bool next(VideoFrame& frame, int64_t stride = 1);
  /// Moves to frame `index` by grabbing (not decoding) the frames before it, e.g. to resume
  /// an interrupted job. False when the file ends first.
  bool skip_to(int64_t index);

 private:
  std::string path_;
  std::unique_ptr<cv::VideoCapture> capture_;
  int64_t frame_count_ = 0, width_ = 0, height_ = 0, next_index_ = 0;
  double fps_ = 0.0;
};

/// A BGR 8-bit OpenCV image as [3, H, W] float32 RGB in [0, 1].
at::Tensor rgb_tensor_from_bgr(const void* data, int64_t height, int64_t width);

}  // namespace psearch::data
