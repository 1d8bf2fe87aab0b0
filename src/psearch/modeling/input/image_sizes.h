#pragma once
/// Sizes of a batch of images after the input transform, as detectors take them.
#include <array>
#include <cstdint>
#include <vector>

namespace psearch::modeling {

/// Sizes of a batch of images.
struct ImageSizes {
  /// (H, W) of the padded batch tensor [B, 3, H, W]; anchor strides are H / H_l, W / W_l.
  std::array<int64_t, 2> batch{};
  /// (h, w) of each image inside it (before padding); its detections are clipped to it.
  std::vector<std::array<int64_t, 2>> images;
};

}  // namespace psearch::modeling
