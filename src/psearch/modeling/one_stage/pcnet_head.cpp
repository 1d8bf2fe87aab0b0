#include "psearch/modeling/one_stage/pcnet_head.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>

#include "psearch/modeling/layers/conv_relu.h"
#include "psearch/ops/ops.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

constexpr int64_t kPoints = 9;                 // K: a 3x3 kernel
constexpr int64_t kOffsetsPerAnchor = 2 * kPoints;
constexpr double kPriorProbability = 0.01;     // RetinaNet's initial person probability

nn::Sequential tower(int64_t in, int64_t width, int64_t depth) {
  nn::Sequential seq;
  for (int64_t i = 0; i < depth; ++i) seq->push_back(ConvReLU(i == 0 ? in : width, width));
  return seq;
}

nn::Conv2d conv3x3(int64_t in, int64_t out, bool bias = true) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(bias));
}

/// [B, C, H, W] -> [B * A, C, H, W]: every image's map once per anchor, anchor-major
/// within an image.
at::Tensor per_anchor(const at::Tensor& x, int64_t anchors) {
  if (anchors == 1) return x;
  return x.unsqueeze(1).expand({x.size(0), anchors, x.size(1), x.size(2), x.size(3)}).reshape(
      {x.size(0) * anchors, x.size(1), x.size(2), x.size(3)});
}

/// [B * A, C, H, W] -> [B, H * W * A, C] in the anchor generator's order.
at::Tensor flatten_anchors(const at::Tensor& x, int64_t anchors) {
  const int64_t b = x.size(0) / anchors;
  return flatten_per_anchor(x.reshape({b, anchors * x.size(1), x.size(2), x.size(3)}), x.size(1));
}

}  // namespace

PCNetHeadImpl::PCNetHeadImpl(const PCNetHeadOptions& o) : options_(o) {
  TORCH_CHECK(o.num_convs >= 1 && o.anchors_per_cell >= 1 && o.num_levels >= 1, "PCNetHead: bad options");
  if (o.cpp) {
    offset_tower_ = register_module("offset_tower", tower(o.in_channels, o.in_channels, 1));
    offset_coord_ = register_module("offset_coord", conv3x3(o.in_channels, kOffsetsPerAnchor * o.anchors_per_cell));
    offset_scales_ = register_parameter("offset_scales", at::ones({o.num_levels}));
    auto cpp = register_module("cpp", std::make_shared<nn::Module>());
    const double bound = 1.0 / std::sqrt(static_cast<double>(o.in_channels * kPoints));
    for (int64_t l = 0; l < o.num_levels; ++l) {
      at::Tensor w = at::empty({o.reid_channels, o.in_channels, 3, 3});
      nn::init::uniform_(w, -bound, bound);  // the DCN default (official code)
      cpp_weights_.push_back(cpp->register_parameter(std::to_string(l), w));
    }
  } else {
    reid_convs_ = register_module("reid_conv", nn::ModuleList());
    for (int64_t l = 0; l < o.num_levels; ++l) reid_convs_->push_back(conv3x3(o.in_channels, o.reid_channels));
  }
  const int64_t tower_in = o.serialized ? o.reid_channels : o.in_channels;
  cls_tower_ = register_module("cls_tower", tower(tower_in, o.head_channels, o.num_convs));
  if (!o.share_towers) box_tower_ = register_module("box_tower", tower(tower_in, o.head_channels, o.num_convs));
  cls_logits_ = register_module("cls_logits", conv3x3(o.head_channels, 1));
  bbox_pred_ = register_module("bbox_pred", conv3x3(o.head_channels, 4));

  // RetinaNet's initialisation for towers and predictors (N(0, 0.01), zero bias, person
  // prior 0.01); offset_coord gets kaiming_uniform(a=1) as in the official code, so the
  // points start off the regular grid, or zeros (zero_offsets).
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    if (name.rfind("cpp.", 0) == 0 || name == "offset_scales" || name.rfind("reid_conv.", 0) == 0) continue;
    if (item.value().dim() == 1) {
      nn::init::zeros_(item.value());
    } else if (name.rfind("offset_coord.", 0) == 0) {
      if (o.zero_offsets) {
        nn::init::zeros_(item.value());
      } else {
        nn::init::kaiming_uniform_(item.value(), 1);
      }
    } else {
      nn::init::normal_(item.value(), 0.0, 0.01);
    }
  }
  nn::init::constant_(cls_logits_->bias, -std::log((1 - kPriorProbability) / kPriorProbability));
}

std::pair<at::Tensor, at::Tensor> PCNetHeadImpl::reid_features(const at::Tensor& p, int64_t level) {
  const int64_t a = options_.anchors_per_cell;
  if (!options_.cpp) {
    return {per_anchor(reid_convs_[level]->as<nn::Conv2d>()->forward(p), a), at::Tensor()};
  }
  const at::Tensor offsets = offset_coord_->forward(offset_tower_->forward(p)) * offset_scales_[level];
  const at::Tensor per_anchor_offsets =
      offsets.reshape({p.size(0) * a, kOffsetsPerAnchor, p.size(2), p.size(3)});
  const at::Tensor f = ops::deform_conv2d(per_anchor(p, a), cpp_weights_[level], per_anchor_offsets, at::Tensor(),
                                          at::Tensor(), 1, 1, 1, 1, 1, 1, 1, 1);
  return {f, offsets};
}

PCNetHeadOutput PCNetHeadImpl::forward(const std::vector<at::Tensor>& pyramid) {
  TORCH_CHECK(static_cast<int64_t>(pyramid.size()) == options_.num_levels, "PCNetHead expects ",
              options_.num_levels, " pyramid levels, got ", pyramid.size());
  const int64_t a = options_.anchors_per_cell;
  std::vector<at::Tensor> cls, box, reid, offsets;
  PCNetHeadOutput out;
  for (int64_t l = 0; l < options_.num_levels; ++l) {
    const at::Tensor& p = pyramid[l];
    auto [f, off] = reid_features(p, l);  // [B * A, D, H, W], [B, 18 A, H, W]
    const at::Tensor tower_in = options_.serialized ? f : per_anchor(p, a);
    const at::Tensor cls_features = cls_tower_->forward(tower_in);
    const at::Tensor box_features = options_.share_towers ? cls_features : box_tower_->forward(tower_in);
    cls.push_back(flatten_anchors(cls_logits_->forward(cls_features), a));
    box.push_back(flatten_anchors(bbox_pred_->forward(box_features), a));
    reid.push_back(flatten_anchors(f, a));
    if (off.defined()) offsets.push_back(flatten_per_anchor(off, kOffsetsPerAnchor));
    out.cell_features.push_back(f.reshape({p.size(0), a, f.size(1), f.size(2), f.size(3)}).mean(1));
    out.anchors_per_level.push_back(p.size(2) * p.size(3) * a);
  }
  out.cls_logits = at::cat(cls, 1);
  out.box_deltas = at::cat(box, 1);
  out.reid = at::cat(reid, 1);
  if (!offsets.empty()) out.offsets = at::cat(offsets, 1);
  return out;
}

}  // namespace psearch::modeling
