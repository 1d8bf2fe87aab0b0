#pragma once
/// The detections of one image with their re-identification embeddings: what every
/// person-search model's gallery path returns and what the evaluator and the index read.
#include <ATen/core/Tensor.h>

namespace psearch::modeling {

/// Detections of one image, in the input image's pixel coordinates. N may be 0.
struct Detections {
  at::Tensor boxes;     ///< [N, 4] float32 (x1, y1, x2, y2)
  at::Tensor scores;    ///< [N] float32 detection confidence
  at::Tensor features;  ///< [N, D] float32; similarity of two boxes is their dot product
                        ///< (undefined is fine for detection-only use)
};

}  // namespace psearch::modeling
