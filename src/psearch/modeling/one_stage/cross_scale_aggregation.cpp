#include "psearch/modeling/one_stage/cross_scale_aggregation.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/meshgrid.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <limits>

namespace psearch::modeling {

PyramidCells pyramid_cells(const std::vector<at::Tensor>& cell_features, const std::vector<int64_t>& strides,
                           int64_t image) {
  TORCH_CHECK(cell_features.size() == strides.size(), "pyramid_cells: one stride per level");
  std::vector<at::Tensor> features, centres, levels;
  for (size_t l = 0; l < cell_features.size(); ++l) {
    const at::Tensor f = cell_features[l][image];  // [D, H, W]
    const int64_t h = f.size(1), w = f.size(2), s = strides[l];
    const auto opts = f.options();
    const at::Tensor ys = at::arange(h, opts).mul(s).add(s / 2);
    const at::Tensor xs = at::arange(w, opts).mul(s).add(s / 2);
    const std::vector<at::Tensor> grid = at::meshgrid({ys, xs}, "ij");  // row-major, as the anchors
    centres.push_back(at::stack({grid[1].reshape(-1), grid[0].reshape(-1)}, 1));
    features.push_back(f.reshape({f.size(0), h * w}).t());
    levels.push_back(at::full({h * w}, static_cast<int64_t>(l), opts.dtype(at::kLong)));
  }
  return {at::cat(features), at::cat(centres), at::cat(levels)};
}

at::Tensor cells_inside(const at::Tensor& boxes, const at::Tensor& centres) {
  const at::Tensor x = centres.select(1, 0).unsqueeze(0), y = centres.select(1, 1).unsqueeze(0);
  const at::Tensor b = boxes.to(centres.dtype());
  return (x > b.select(1, 0).unsqueeze(1)) & (y > b.select(1, 1).unsqueeze(1)) & (x < b.select(1, 2).unsqueeze(1)) &
         (y < b.select(1, 3).unsqueeze(1));
}

CrossScaleAggregationImpl::CrossScaleAggregationImpl(int64_t dim, int64_t num_levels, double logit_clamp)
    : logit_clamp_(logit_clamp) {
  query_ = register_module("query", torch::nn::Linear(dim, dim));
  key_ = register_module("key", torch::nn::Linear(dim, dim));
  level_scales_ = register_parameter("level_scales", at::ones({num_levels}));
}

at::Tensor CrossScaleAggregationImpl::attention(const at::Tensor& point_features, const at::Tensor& boxes,
                                                const PyramidCells& cells) {
  TORCH_CHECK(point_features.dim() == 2 && boxes.dim() == 2 && boxes.size(1) == 4 &&
                  point_features.size(0) == boxes.size(0),
              "CrossScaleAggregation: point features [N, D] and boxes [N, 4], got ", point_features.sizes(), " and ",
              boxes.sizes());
  const at::Tensor keys = key_->forward(cells.features * level_scales_.index_select(0, cells.levels).unsqueeze(1));
  at::Tensor logits = query_->forward(point_features).matmul(keys.t());  // [N, C]
  if (logit_clamp_ > 0) logits = at::clamp(logits, -logit_clamp_, logit_clamp_);
  const at::Tensor inside = cells_inside(boxes, cells.centres);
  logits = logits.masked_fill(inside.logical_not(), -std::numeric_limits<double>::infinity());
  // A row without candidates is all -inf: its softmax is NaN, and its weights must be 0.
  const at::Tensor has_candidates = inside.any(1, /*keepdim=*/true);
  const at::Tensor safe = at::where(has_candidates, logits, at::zeros_like(logits));
  return at::where(has_candidates, at::softmax(safe, 1), at::zeros_like(logits));
}

at::Tensor CrossScaleAggregationImpl::forward(const at::Tensor& point_features, const at::Tensor& boxes,
                                              const PyramidCells& cells) {
  return point_features + attention(point_features, boxes, cells).matmul(cells.features);
}

}  // namespace psearch::modeling
