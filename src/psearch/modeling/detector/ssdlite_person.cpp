#include "psearch/modeling/detector/ssdlite_person.h"

#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/floor.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/conv.h>

#include <cmath>
#include <stdexcept>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/modeling/pretrained_weights.h"
#include "psearch/ops/ops.h"
#include "psearch/util/traceable.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;
using at::indexing::Slice;

constexpr double kTensorFlowBnEps = 1e-3;
/// Output channels of the four extra layers; their 1x1 reductions are half as wide.
constexpr int64_t kExtraChannels[] = {512, 256, 256, 128};
constexpr int64_t kTapChannels[] = {576, 1280, 512, 256, 256, 128};
/// FasterRcnnBoxCoder's scale factors for (ty, tx, th, tw).
constexpr double kBoxScales[] = {10.0, 10.0, 5.0, 5.0};
constexpr double kMinScale = 0.2, kMaxScale = 0.95;
/// The input size (pixels) the weights were trained at; anchor scales are fractions of it.
constexpr double kTrainedSize = 300.0;

ConvNormOptions tf_conv(int64_t in, int64_t out, int64_t kernel) {
  return ConvNormOptions(in, out, kernel).bn_eps(kTensorFlowBnEps).padding(ConvPadding::kTensorFlowSame);
}

/// 1x1 reduce, depthwise 3x3 stride 2, 1x1 expand (TF's layer_19_{1,2}_Conv2d_k_*).
nn::Sequential extra_layer(int64_t in, int64_t out) {
  const int64_t mid = out / 2;
  nn::Sequential seq;
  seq->push_back(ConvNorm(tf_conv(in, mid, 1)));
  seq->push_back(ConvNorm(tf_conv(mid, mid, 3).stride(2).groups(mid)));
  seq->push_back(ConvNorm(tf_conv(mid, out, 1)));
  return seq;
}

/// Depthwise 3x3 + BN + ReLU6, then a 1x1 conv with bias (TF's SSDLite box predictor).
nn::Sequential predictor(int64_t in, int64_t out) {
  nn::Sequential seq;
  seq->push_back(ConvNorm(tf_conv(in, in, 3).groups(in)));
  seq->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, 1).bias(true)));
  return seq;
}

int64_t anchors_per_cell(int64_t tap) { return tap == 0 ? 3 : 6; }

/// (scale, aspect ratio) of each anchor of a cell of `tap`, as TF's create_ssd_anchors.
std::vector<std::pair<double, double>> anchor_specs(int64_t tap) {
  const auto scale = [](int64_t l) {
    return l < SSDLitePersonImpl::kNumTaps
               ? kMinScale + (kMaxScale - kMinScale) * l / (SSDLitePersonImpl::kNumTaps - 1)
               : 1.0;
  };
  if (tap == 0) return {{0.1, 1.0}, {scale(0), 2.0}, {scale(0), 0.5}};
  std::vector<std::pair<double, double>> specs;
  // The graph's constant is 0.3333, not 1/3.
  for (double ratio : {1.0, 2.0, 0.5, 3.0, 0.3333}) specs.emplace_back(scale(tap), ratio);
  specs.emplace_back(std::sqrt(scale(tap) * scale(tap + 1)), 1.0);
  return specs;
}

/// [B, A * k, H, W] head output -> [B, H * W * A, k] (row, column, anchor order).
at::Tensor flatten_head(const at::Tensor& x, int64_t k) {
  return x.permute({0, 2, 3, 1}).reshape({x.size(0), -1, k});
}

/// TF 1.x ResizeBilinear (align_corners = false, half_pixel_centers = false) of one axis:
/// source index = output index * in / out, neighbours clamped at the last pixel.
at::Tensor resize_axis(const at::Tensor& x, int64_t dim, int64_t out) {
  const int64_t in = x.size(dim);
  const at::Tensor src = at::arange(out, x.options().dtype(at::kFloat)) * (static_cast<float>(in) / out);
  const at::Tensor lo = at::floor(src);
  const at::Tensor frac = src - lo;
  const at::Tensor i0 = lo.to(at::kLong).clamp_max(in - 1);
  const at::Tensor i1 = (i0 + 1).clamp_max(in - 1);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[dim] = out;
  const at::Tensor a = x.index_select(dim, i0), b = x.index_select(dim, i1);
  return a + (b - a) * frac.view(shape);
}

}  // namespace

SSDLitePersonImpl::SSDLitePersonImpl(const SSDLitePersonOptions& options) : options_(options) {
  backbone_ = register_module(
      "backbone",
      MobileNetV2(MobileNetV2Options().bn_eps(kTensorFlowBnEps).padding(ConvPadding::kTensorFlowSame)));
  extras_ = register_module("extras", nn::ModuleList());
  int64_t in = MobileNetV2Impl::channels(18);
  for (int64_t out : kExtraChannels) {
    extras_->push_back(extra_layer(in, out));
    in = out;
  }
  box_head_ = register_module("box_head", nn::ModuleList());
  class_head_ = register_module("class_head", nn::ModuleList());
  for (int64_t l = 0; l < kNumTaps; ++l) {
    box_head_->push_back(predictor(kTapChannels[l], anchors_per_cell(l) * 4));
    class_head_->push_back(predictor(kTapChannels[l], anchors_per_cell(l) * kNumClasses));
  }
}

SSDOutputs SSDLitePersonImpl::forward(const at::Tensor& inputs) {
  TORCH_CHECK(inputs.dim() == 4 && inputs.size(1) == 3, "SSDLite expects inputs [B, 3, h, w], got ", inputs.sizes());
  std::vector<at::Tensor> taps;
  at::Tensor x = backbone_->run(inputs, 0, 14);
  auto [expansion, y] = backbone_->inverted_residual(14)->forward_with_expansion(x);
  taps.push_back(expansion);
  x = backbone_->run(y, 15, MobileNetV2Impl::kNumBlocks);
  taps.push_back(x);
  for (const auto& extra : *extras_) {
    x = extra->as<nn::Sequential>()->forward(x);
    taps.push_back(x);
  }
  SSDOutputs out;
  std::vector<at::Tensor> boxes, logits;
  for (int64_t l = 0; l < kNumTaps; ++l) {
    out.grid_sizes.push_back({taps[l].size(2), taps[l].size(3)});
    boxes.push_back(flatten_head(box_head_[l]->as<nn::Sequential>()->forward(taps[l]), 4));
    logits.push_back(flatten_head(class_head_[l]->as<nn::Sequential>()->forward(taps[l]), kNumClasses));
  }
  out.box_encodings = at::cat(boxes, 1);
  out.class_logits = at::cat(logits, 1);
  return out;
}

at::Tensor SSDLitePersonImpl::preprocess(const at::Tensor& frame) const {
  TORCH_CHECK(frame.dim() == 3 && frame.size(0) == 3, "SSDLite expects a frame [3, H, W], got ", frame.sizes());
  const auto [h, w] = options_.input_size();
  const at::Tensor resized = resize_axis(resize_axis(frame.to(at::kFloat), 1, h), 2, w);
  return (resized * 2.0 - 1.0).unsqueeze(0);
}

at::Tensor SSDLitePersonImpl::anchors(const std::vector<std::array<int64_t, 2>>& grid_sizes,
                                      std::array<int64_t, 2> input_size) {
  TORCH_CHECK(static_cast<int64_t>(grid_sizes.size()) == kNumTaps, "SSDLite has ", kNumTaps, " taps");
  // Anchor sizes stay in pixels as trained (scale x 300 px): the convolutions see a person
  // of so many pixels the same way at any input size. For inputs whose shorter side is 300
  // this is TF's own rule (base anchor min(h, w) / (h, w)).
  const double base_h = kTrainedSize / input_size[0], base_w = kTrainedSize / input_size[1];
  std::vector<float> values;
  for (int64_t l = 0; l < kNumTaps; ++l) {
    const auto [rows, cols] = grid_sizes[l];
    const auto specs = anchor_specs(l);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        for (const auto& [scale, ratio] : specs) {
          values.push_back(static_cast<float>((i + 0.5) / rows));
          values.push_back(static_cast<float>((j + 0.5) / cols));
          values.push_back(static_cast<float>(scale / std::sqrt(ratio) * base_h));
          values.push_back(static_cast<float>(scale * std::sqrt(ratio) * base_w));
        }
  }
  return util::host_tensor(values, at::kFloat).view({-1, 4});
}

at::Tensor SSDLitePersonImpl::decode(const at::Tensor& enc, const at::Tensor& anchors) {
  const at::Tensor ya = anchors.select(1, 0), xa = anchors.select(1, 1);
  const at::Tensor ha = anchors.select(1, 2), wa = anchors.select(1, 3);
  const at::Tensor yc = enc.select(-1, 0) / kBoxScales[0] * ha + ya;
  const at::Tensor xc = enc.select(-1, 1) / kBoxScales[1] * wa + xa;
  const at::Tensor h = at::exp(enc.select(-1, 2) / kBoxScales[2]) * ha;
  const at::Tensor w = at::exp(enc.select(-1, 3) / kBoxScales[3]) * wa;
  return at::stack({yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2}, -1);
}

std::vector<Detections> SSDLitePersonImpl::detect(const std::vector<at::Tensor>& frames) {
  c10::NoGradGuard no_grad;
  if (frames.empty()) return {};
  const auto device = backbone_->parameters().front().device();
  std::vector<at::Tensor> inputs;
  for (const auto& frame : frames) inputs.push_back(preprocess(frame.to(device)));
  const SSDOutputs out = forward(at::cat(inputs, 0));
  const at::Tensor anchors = SSDLitePersonImpl::anchors(out.grid_sizes, options_.input_size()).to(device);
  const at::Tensor boxes = decode(out.box_encodings, anchors);
  const at::Tensor scores = at::sigmoid(out.class_logits.select(-1, 1));
  const at::Tensor to_xyxy = util::host_tensor(std::vector<int64_t>{1, 0, 3, 2}, at::kLong).to(device);
  std::vector<Detections> result;
  for (size_t i = 0; i < frames.size(); ++i) {
    // As TF's graph: score threshold, NMS on the unclipped boxes, then clipping to the
    // frame, dropping boxes left with no area, and the top max_detections.
    const at::Tensor candidates = scores[i] > options_.score_thresh();
    at::Tensor b = boxes[i].index({candidates}).index({Slice(), to_xyxy});
    at::Tensor s = scores[i].index({candidates});
    const at::Tensor kept = ops::nms(b, s, options_.nms_thresh()).index({Slice(0, options_.max_detections())});
    b = b.index({kept}).clamp(0.0, 1.0);
    s = s.index({kept});
    const at::Tensor has_area = (b.select(1, 2) > b.select(1, 0)) & (b.select(1, 3) > b.select(1, 1));
    b = b.index({has_area});
    s = s.index({has_area});
    const double frame_h = frames[i].size(1), frame_w = frames[i].size(2);
    const at::Tensor scale = util::host_tensor(std::vector<double>{frame_w, frame_h, frame_w, frame_h}, at::kFloat).to(device);
    result.push_back(Detections{(b * scale).cpu(), s.cpu(), {}});
  }
  return result;
}

void load_ssdlite_person(SSDLitePersonImpl& model, const std::string& path) {
  require_pretrained(path, kSSDLitePerson);
  checkpoint::TensorMap state = checkpoint::load_tensors(path);
  for (auto it = state.begin(); it != state.end();)
    it = it->first.rfind("meta.", 0) == 0 ? state.erase(it) : std::next(it);
  checkpoint::load_state_dict(model, state, checkpoint::Strictness::kStrict, path);
}


}  // namespace psearch::modeling
