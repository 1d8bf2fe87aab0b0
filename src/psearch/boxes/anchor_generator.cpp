#include "psearch/boxes/anchor_generator.h"
#include "psearch/util/traceable.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>

#include <utility>

namespace psearch::boxes {
namespace {

// Zero-centred anchors for one feature map, computed in float32 as torchvision does at
// construction (its cell anchors are made in float32 and only later cast to the feature
// dtype), so rounding matches even when float64 anchors are requested.
at::Tensor make_cell_anchors(const std::vector<double>& sizes, const std::vector<double>& ratios) {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor scales = util::host_tensor(sizes, opts);   // [S]
  const at::Tensor ar = util::host_tensor(ratios, opts);      // [R]
  const at::Tensor h_ratios = ar.sqrt();
  // torchvision writes 1 / h_ratios, which Python evaluates as reciprocal(h_ratios) * 1.
  const at::Tensor w_ratios = h_ratios.reciprocal();
  // [R, S] flattened ratio-major.
  const at::Tensor ws = w_ratios.unsqueeze(1).mul(scales.unsqueeze(0)).reshape(-1);
  const at::Tensor hs = h_ratios.unsqueeze(1).mul(scales.unsqueeze(0)).reshape(-1);
  // Rounding keeps anchor corners on the integer pixel grid; round() is half-to-even,
  // e.g. a 0.5-ratio, size-32 anchor has w/2 = 22.627 -> 23 and h/2 = 11.314 -> 11.
  return at::stack({ws.neg(), hs.neg(), ws, hs}, 1).div(2).round();
}

}  // namespace

AnchorGenerator::AnchorGenerator(std::vector<std::vector<double>> sizes,
                                 std::vector<std::vector<double>> aspect_ratios)
    : sizes_(std::move(sizes)), aspect_ratios_(std::move(aspect_ratios)) {
  TORCH_CHECK(!sizes_.empty(), "AnchorGenerator: sizes must name at least one feature map");
  TORCH_CHECK(sizes_.size() == aspect_ratios_.size(), "AnchorGenerator: sizes has ",
              sizes_.size(), " feature maps but aspect_ratios has ", aspect_ratios_.size(),
              "; give one list of each per feature map");
  cell_anchors_.reserve(sizes_.size());
  for (size_t i = 0; i < sizes_.size(); ++i) {
    TORCH_CHECK(!sizes_[i].empty() && !aspect_ratios_[i].empty(), "AnchorGenerator: feature map ",
                i, " has ", sizes_[i].size(), " sizes and ", aspect_ratios_[i].size(),
                " aspect ratios; both must be non-empty");
    for (double s : sizes_[i]) {
      TORCH_CHECK(s > 0, "AnchorGenerator: anchor sizes must be positive, got ", s,
                  " for feature map ", i);
    }
    for (double r : aspect_ratios_[i]) {
      TORCH_CHECK(r > 0, "AnchorGenerator: aspect ratios must be positive, got ", r,
                  " for feature map ", i);
    }
    cell_anchors_.push_back(make_cell_anchors(sizes_[i], aspect_ratios_[i]));
  }
}

std::vector<int64_t> AnchorGenerator::num_anchors_per_location() const {
  std::vector<int64_t> n;
  n.reserve(sizes_.size());
  for (size_t i = 0; i < sizes_.size(); ++i) {
    n.push_back(static_cast<int64_t>(sizes_[i].size() * aspect_ratios_[i].size()));
  }
  return n;
}

std::vector<at::Tensor> AnchorGenerator::grid_anchors(
    const std::vector<std::array<int64_t, 2>>& grid_sizes,
    const std::vector<std::array<int64_t, 2>>& strides, at::ScalarType dtype,
    at::Device device) const {
  TORCH_CHECK(grid_sizes.size() == cell_anchors_.size() && strides.size() == cell_anchors_.size(),
              "AnchorGenerator: configured for ", cell_anchors_.size(), " feature maps, got ",
              grid_sizes.size(), " grid sizes and ", strides.size(), " strides");
  TORCH_CHECK(at::isFloatingType(dtype), "AnchorGenerator: dtype must be a floating type, got ",
              dtype);
  std::vector<at::Tensor> anchors;
  anchors.reserve(grid_sizes.size());
  for (size_t i = 0; i < grid_sizes.size(); ++i) {
    const auto [grid_h, grid_w] = grid_sizes[i];
    const auto [stride_h, stride_w] = strides[i];
    TORCH_CHECK(grid_h >= 0 && grid_w >= 0 && stride_h >= 0 && stride_w >= 0,
                "AnchorGenerator: feature map ", i, " has grid (", grid_h, ", ", grid_w,
                ") and stride (", stride_h, ", ", stride_w, "); all must be non-negative");
    const at::Tensor base = cell_anchors_[i].to(device, dtype);  // [A, 4]
    // Integer shifts as in torchvision (int32 arange times the stride); they are exact in
    // any float type for realistic image sizes and convert to `dtype` in the final add.
    const auto int_opts = at::TensorOptions().dtype(at::kInt).device(device);
    const at::Tensor shifts_x = at::arange(grid_w, int_opts).mul(stride_w);  // [W]
    const at::Tensor shifts_y = at::arange(grid_h, int_opts).mul(stride_h);  // [H]
    // Row-major grid: cell (y, x) is row y * W + x.
    const at::Tensor sx = shifts_x.unsqueeze(0).expand({grid_h, grid_w}).reshape(-1);
    const at::Tensor sy = shifts_y.unsqueeze(1).expand({grid_h, grid_w}).reshape(-1);
    const at::Tensor shifts = at::stack({sx, sy, sx, sy}, 1);  // [H*W, 4]
    // [H*W, 1, 4] + [1, A, 4]: every cell gets every cell anchor, anchors fastest.
    anchors.push_back(shifts.view({-1, 1, 4}).add(base.view({1, -1, 4})).reshape({-1, 4}));
  }
  return anchors;
}

at::Tensor AnchorGenerator::operator()(std::array<int64_t, 2> image_size,
                                       const std::vector<std::array<int64_t, 2>>& feature_sizes,
                                       at::ScalarType dtype, at::Device device) const {
  const auto [image_h, image_w] = image_size;
  TORCH_CHECK(image_h > 0 && image_w > 0, "AnchorGenerator: image_size (height, width) must be "
              "positive, got (", image_h, ", ", image_w, ")");
  TORCH_CHECK(feature_sizes.size() == cell_anchors_.size(), "AnchorGenerator: configured for ",
              cell_anchors_.size(), " feature maps, got ", feature_sizes.size(), " feature sizes");
  std::vector<std::array<int64_t, 2>> strides;
  strides.reserve(feature_sizes.size());
  for (size_t i = 0; i < feature_sizes.size(); ++i) {
    const auto [h, w] = feature_sizes[i];
    // torchvision would divide by zero for an empty map, and a map larger than the image
    // gives stride 0 (all anchors at the origin); both mean the caller mixed up sizes.
    TORCH_CHECK(h >= 1 && w >= 1 && h <= image_h && w <= image_w, "AnchorGenerator: feature map ",
                i, " has size (", h, ", ", w, "), which must be between (1, 1) and the image size (",
                image_h, ", ", image_w, ")");
    // Floor division as torchvision: a 100-pixel side with a 13-cell map gives stride 7.
    strides.push_back({image_h / h, image_w / w});
  }
  return at::cat(grid_anchors(feature_sizes, strides, dtype, device), 0);
}

}  // namespace psearch::boxes
