#pragma once
/// What evaluation, indexing and search need from a person-search model: a gallery path
/// (detect every person in an image and embed each) and a query path (embed given boxes).
#include <ATen/core/Tensor.h>

#include <string>

namespace psearch::modeling {

/// Detections of one image, in the input image's pixel coordinates.
struct Detections {
  at::Tensor boxes;     ///< [N, 4] float32 (x1, y1, x2, y2)
  at::Tensor scores;    ///< [N] float32 detection confidence
  at::Tensor features;  ///< [N, D] float32; similarity between two boxes is their dot product
};

class SearchModel {
 public:
  virtual ~SearchModel() = default;

  /// Model name for logs and result files, e.g. "nae".
  virtual std::string name() const = 0;
  /// Whether detect() is available (a re-identification-only baseline has no detector).
  virtual bool has_detector() const = 0;

  /// Gallery path. image: [3, H, W] float32 RGB in [0, 1] (not normalised).
  virtual Detections detect(const at::Tensor& image) = 0;

  /// Query path: embeds the given boxes of one image. image: [3, H, W] RGB in [0, 1];
  /// boxes: [K, 4] (x1, y1, x2, y2) in image pixels. Returns [K, D], L2-normalised.
  virtual at::Tensor embed(const at::Tensor& image, const at::Tensor& boxes) = 0;
};

}  // namespace psearch::modeling
