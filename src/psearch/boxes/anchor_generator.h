#pragma once
/// Anchors of Faster R-CNN / RetinaNet, with the semantics of
/// torchvision.models.detection.anchor_utils.AnchorGenerator.
///
/// Feature map i carries A_i = |sizes[i]| * |aspect_ratios[i]| anchors at every cell.
/// Aspect ratio r means height / width: an anchor of size s and ratio r has width
/// s / sqrt(r) and height s * sqrt(r), so its area is s^2. The zero-centred "cell
/// anchors" (-w/2, -h/2, w/2, h/2) are rounded to integers (half to even), as torchvision
/// does, and then shifted to every cell's top-left corner (x * stride_w, y * stride_h).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <vector>

namespace psearch::boxes {

class AnchorGenerator {
 public:
  /// sizes[i]: anchor sizes (square-root of the area, in input-image pixels) of feature
  /// map i; aspect_ratios[i]: its height / width ratios. Both lists need one entry per
  /// feature map, e.g. FPN: sizes {{32}, {64}, {128}, {256}, {512}} with aspect_ratios
  /// {{0.5, 1, 2}} x 5; ResNet C4: sizes {{32, 64, 128, 256, 512}}, aspect_ratios {{0.5, 1, 2}}.
  /// (Unlike torchvision, flat lists are not expanded implicitly.)
  AnchorGenerator(std::vector<std::vector<double>> sizes,
                  std::vector<std::vector<double>> aspect_ratios);

  /// Number of feature maps this generator expects.
  int64_t num_feature_maps() const { return static_cast<int64_t>(cell_anchors_.size()); }

  /// A_i for every feature map i: |sizes[i]| * |aspect_ratios[i]|.
  std::vector<int64_t> num_anchors_per_location() const;

  /// Zero-centred, rounded anchors of every feature map, float32 on the CPU: [A_i, 4] each,
  /// ordered ratio-major (anchor a = ratio_index * |sizes[i]| + size_index).
  const std::vector<at::Tensor>& cell_anchors() const { return cell_anchors_; }

  /// Anchors of one image, equal to every entry of the list torchvision's forward returns.
  /// image_size: (height, width) of the batched (padded) image tensor;
  /// feature_sizes[i]: (H_i, W_i) of feature map i. The stride of map i is
  /// (height / H_i, width / W_i) with integer floor division, as in torchvision.
  /// Returns [sum_i H_i * W_i * A_i, 4] (x1, y1, x2, y2) of `dtype` on `device`, ordered by
  /// feature map, then row y, then column x, then cell anchor:
  /// row ((y * W_i + x) * A_i + a) of map i's block is cell_anchors()[i][a] shifted by
  /// (x * stride_w, y * stride_h).
  at::Tensor operator()(std::array<int64_t, 2> image_size,
                        const std::vector<std::array<int64_t, 2>>& feature_sizes,
                        at::ScalarType dtype = at::kFloat, at::Device device = at::kCPU) const;

  /// Anchors of each feature map separately (torchvision's grid_anchors):
  /// grid_sizes[i]: (H_i, W_i); strides[i]: (stride_h, stride_w).
  /// Returns one [H_i * W_i * A_i, 4] tensor per feature map, ordered as in operator().
  std::vector<at::Tensor> grid_anchors(const std::vector<std::array<int64_t, 2>>& grid_sizes,
                                       const std::vector<std::array<int64_t, 2>>& strides,
                                       at::ScalarType dtype = at::kFloat,
                                       at::Device device = at::kCPU) const;

 private:
  std::vector<std::vector<double>> sizes_;
  std::vector<std::vector<double>> aspect_ratios_;
  std::vector<at::Tensor> cell_anchors_;  // float32, CPU
};

}  // namespace psearch::boxes
