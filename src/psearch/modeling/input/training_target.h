#pragma once
/// The ground truth of one training image, as every person-search model's training
/// forward takes it.
#include <ATen/core/Tensor.h>

namespace psearch::modeling {

struct TrainingTarget {
  at::Tensor boxes;  ///< [G, 4] float32 (x1, y1, x2, y2) in the image's pixels (G may be 0)
  at::Tensor pids;   ///< int64 [G]: 0..num_pids-1 labeled identity, -1 unlabeled person
};

}  // namespace psearch::modeling
