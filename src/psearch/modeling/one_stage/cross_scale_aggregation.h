#pragma once
/// Cross Scale Aggregation of PCNet (Sec. 3.2, Eq. 8-10): a person's re-id feature is its
/// own point feature f' plus an attention-weighted sum of the point features of every
/// pyramid cell, on any level, whose centre lies inside the person's box:
///
///   f = f' + sum_i softmax_i( phi(f_i)^T psi(f') ) f_i,   i over the candidate set Omega.
///
/// phi ("key") and psi ("query") are fully connected layers D -> D. As in the official code,
/// each level scales its candidates by a learnable factor (level_scales, initialised to 1)
/// before phi, the logits are not divided by sqrt(D), and they can be clamped to [-c, c].
/// A box without candidates gets f = f'.
///
/// Everything is batched per image: the candidates of all boxes are one [N, C] mask over the
/// image's C cells, so there is no loop over boxes.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace psearch::modeling {

/// The cells of one image over all levels.
struct PyramidCells {
  at::Tensor features;  ///< [C, D] point features (F_reid, averaged over a cell's anchors)
  at::Tensor centres;   ///< [C, 2] (x, y) cell centres in batch pixels: (col, row) * s + s / 2
  at::Tensor levels;    ///< int64 [C] level index 0 .. L-1
};

/// Cells of image `image` of the batch. cell_features[l]: [B, D, H_l, W_l]; strides[l]: s_l.
PyramidCells pyramid_cells(const std::vector<at::Tensor>& cell_features, const std::vector<int64_t>& strides,
                           int64_t image);

/// [N, C] bool: whether cell c's centre lies strictly inside box n ([N, 4] x1, y1, x2, y2).
at::Tensor cells_inside(const at::Tensor& boxes, const at::Tensor& centres);

class CrossScaleAggregationImpl : public torch::nn::Module {
 public:
  /// logit_clamp <= 0: no clamp.
  CrossScaleAggregationImpl(int64_t dim, int64_t num_levels, double logit_clamp = 0.0);

  /// f' of N boxes [N, D] and the boxes [N, 4] in batch pixels -> f [N, D].
  at::Tensor forward(const at::Tensor& point_features, const at::Tensor& boxes, const PyramidCells& cells);

  /// The attention weights [N, C] (zero outside each box's candidates), for inspection.
  at::Tensor attention(const at::Tensor& point_features, const at::Tensor& boxes, const PyramidCells& cells);

  torch::nn::Linear query() const { return query_; }
  torch::nn::Linear key() const { return key_; }
  const at::Tensor& level_scales() const { return level_scales_; }

 private:
  torch::nn::Linear query_{nullptr};  // psi
  torch::nn::Linear key_{nullptr};    // phi
  at::Tensor level_scales_;
  double logit_clamp_;
};
TORCH_MODULE(CrossScaleAggregation);

}  // namespace psearch::modeling
