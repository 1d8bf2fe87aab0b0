#pragma once
/// The serialized detector head of PCNet ("Points in Context for Efficient Person Search",
/// Zhong et al.; Sec. 3 and 3.1), run on every pyramid level P3 .. P7:
///
///   F_reid_l = CPP_l(P_l)                      (Eq. 1, 5)
///   (F_cls_l, F_reg_l) = towers(F_reid_l)      (Eq. 2)
///
/// Contextual Points Pooling: a 3x3 conv + ReLU ("offset_tower", shared by all levels) and
/// a 3x3 conv ("offset_coord") predict, for each anchor of each cell, the offsets
/// (dy, dx) of K = 9 sampling points, in cells of that level; each level multiplies them
/// by its own learnable factor (offset_scales[l], initialised to 1, as the official code);
/// a 3x3 deformable convolution per level (psearch::ops::deform_conv2d, no bias) samples
/// P_l at those points. With several anchors per cell (PCNet-dagger) each anchor has its own
/// offsets and so its own F_reid; the convolution weights are shared by the anchors.
///
/// The towers (num_convs x 3x3 conv + ReLU, width head_channels, shared by all levels) then
/// run on each anchor's F_reid and end in 3x3 predictors of one person logit and four box
/// deltas per anchor. Ablations: a plain 3x3 conv instead of CPP ("conv"), and towers that
/// read P_l instead of F_reid ("parallel" re-id branch).
///
/// Parameter names: offset_tower.0.0.*, offset_coord.*, offset_scales, cpp.<l> (deformable
/// weights [D, C, 3, 3]) or reid_conv.<l>.* (plain conv), cls_tower.<i>.0.*, cls_logits.*,
/// box_tower.<i>.0.* (absent with shared towers), bbox_pred.*.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace psearch::modeling {

struct PCNetHeadOptions {
  int64_t in_channels = 256;    ///< C of every pyramid level
  int64_t reid_channels = 256;  ///< D of F_reid (the embedding dimension)
  int64_t head_channels = 256;  ///< tower width (light: 64)
  int64_t num_convs = 1;        ///< convs per tower
  bool share_towers = false;    ///< one tower feeds both predictors
  int64_t num_levels = 5;
  int64_t anchors_per_cell = 1;
  bool cpp = true;              ///< false: plain 3x3 conv for F_reid
  bool zero_offsets = false;    ///< offset conv starts at zero (regular grid) instead of kaiming_uniform(a=1)
  bool serialized = true;       ///< false: towers read P_l (parallel re-id branch)
};

/// The head's outputs for a batch of B images, flattened over levels, cells and anchors in
/// the anchor generator's order (level, row, column, anchor), T anchors in all.
struct PCNetHeadOutput {
  at::Tensor cls_logits;   ///< [B, T, 1]
  at::Tensor box_deltas;   ///< [B, T, 4]
  at::Tensor reid;         ///< [B, T, D] F_reid of each anchor (f' of Eq. 7)
  at::Tensor offsets;      ///< [B, T, 18] CPP offsets (dy, dx per kernel tap, row-major) in cells; undefined without CPP
  std::vector<at::Tensor> cell_features;  ///< per level [B, D, H_l, W_l]: F_reid averaged over the cell's anchors (CSA candidates)
  std::vector<int64_t> anchors_per_level; ///< H_l * W_l * A
};

class PCNetHeadImpl : public torch::nn::Module {
 public:
  explicit PCNetHeadImpl(const PCNetHeadOptions& options);

  /// pyramid[l]: [B, C, H_l, W_l].
  PCNetHeadOutput forward(const std::vector<at::Tensor>& pyramid);

  const PCNetHeadOptions& options() const { return options_; }

 private:
  /// F_reid of level l for each anchor, [B * A, D, H, W], and the offsets [B, 18 A, H, W].
  std::pair<at::Tensor, at::Tensor> reid_features(const at::Tensor& p, int64_t level);

  PCNetHeadOptions options_;
  torch::nn::Sequential offset_tower_{nullptr};
  torch::nn::Conv2d offset_coord_{nullptr};
  at::Tensor offset_scales_;
  std::vector<at::Tensor> cpp_weights_;
  torch::nn::ModuleList reid_convs_{nullptr};
  torch::nn::Sequential cls_tower_{nullptr};
  torch::nn::Sequential box_tower_{nullptr};
  torch::nn::Conv2d cls_logits_{nullptr};
  torch::nn::Conv2d bbox_pred_{nullptr};
};
TORCH_MODULE(PCNetHead);

}  // namespace psearch::modeling
