#pragma once
/// What evaluation, indexing and search need from a person-search model: a gallery path
/// (detect every person in an image and embed each) and a query path (embed given boxes).
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "psearch/modeling/detections.h"

namespace psearch::modeling {

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

  /// Gallery path on several images at once (one forward pass where the model batches);
  /// the default calls detect() per image.
  virtual std::vector<Detections> detect_batch(const std::vector<at::Tensor>& images) {
    std::vector<Detections> out;
    for (const auto& image : images) out.push_back(detect(image));
    return out;
  }
};

}  // namespace psearch::modeling
