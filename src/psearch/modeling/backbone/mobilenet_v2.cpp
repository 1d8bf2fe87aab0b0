#include "psearch/modeling/backbone/mobilenet_v2.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/hardtanh.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <stdexcept>

#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/layers/frozen_batch_norm.h"
#include "psearch/modeling/torchvision_files.h"
#include "psearch/util/strings.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

nn::AnyModule make_norm(NormKind kind, int64_t channels, double eps) {
  if (kind == NormKind::kFrozen) return nn::AnyModule(FrozenBatchNorm2d(channels, eps));
  return nn::AnyModule(BatchNorm(channels, eps));
}

/// TensorFlow's "SAME" padding of one dimension: (before, after).
std::pair<int64_t, int64_t> same_padding(int64_t size, int64_t kernel, int64_t stride) {
  const int64_t out = (size + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - size, 0);
  return {total / 2, total - total / 2};
}

/// One row of the MobileNetV2 table: expansion t, channels c, repeats n, first stride s.
struct StageSpec {
  int64_t t, c, n, s;
};
constexpr StageSpec kStages[] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2},  {6, 64, 4, 2},
                                 {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
constexpr int64_t kStemChannels = 32, kLastChannels = 1280;

/// (channels, stride) after features[index].
std::pair<int64_t, int64_t> block_shape(int64_t index) {
  if (index < 0 || index >= MobileNetV2Impl::kNumBlocks)
    throw std::out_of_range("MobileNetV2 has features.0 .. features.18, asked for " + std::to_string(index));
  if (index == 0) return {kStemChannels, 2};
  if (index == MobileNetV2Impl::kNumBlocks - 1) return {kLastChannels, 32};
  int64_t i = 1, stride = 2;
  for (const StageSpec& s : kStages)
    for (int64_t r = 0; r < s.n; ++r, ++i) {
      if (r == 0) stride *= s.s;
      if (i == index) return {s.c, stride};
    }
  throw std::logic_error("MobileNetV2 block table out of step");
}

}  // namespace

ConvNormImpl::ConvNormImpl(const ConvNormOptions& o) : options_(o) {
  const int64_t pad = o.padding() == ConvPadding::kSymmetric ? o.kernel() / 2 : 0;
  conv_ = register_module("0", nn::Conv2d(nn::Conv2dOptions(o.in(), o.out(), o.kernel())
                                              .stride(o.stride())
                                              .padding(pad)
                                              .groups(o.groups())
                                              .bias(false)));
  norm_ = make_norm(o.norm(), o.out(), o.bn_eps());
  register_module("1", norm_.ptr());
}

at::Tensor ConvNormImpl::forward(const at::Tensor& x) {
  at::Tensor input = x;
  if (options_.padding() == ConvPadding::kTensorFlowSame && options_.kernel() > 1) {
    const auto [top, bottom] = same_padding(x.size(2), options_.kernel(), options_.stride());
    const auto [left, right] = same_padding(x.size(3), options_.kernel(), options_.stride());
    input = at::constant_pad_nd(x, {left, right, top, bottom}, 0.0);
  }
  at::Tensor y = norm_.forward(conv_->forward(input));
  return options_.relu6() ? at::hardtanh(y, 0.0, 6.0) : y;
}

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio,
                                           const MobileNetV2Options& o)
    : residual_(stride == 1 && in == out) {
  const int64_t hidden = in * expand_ratio;
  auto conv_norm = [&](int64_t cin, int64_t cout, int64_t kernel) {
    return ConvNormOptions(cin, cout, kernel).norm(o.norm()).bn_eps(o.bn_eps()).padding(o.padding());
  };
  // torchvision's layout: conv.0 expand (absent for t = 1), then depthwise, project, its BN.
  nn::Sequential layers;
  if (expand_ratio != 1) {
    expand_ = ConvNorm(conv_norm(in, hidden, 1));
    layers->push_back(expand_);
  }
  depthwise_ = ConvNorm(conv_norm(hidden, hidden, 3).stride(stride).groups(hidden));
  layers->push_back(depthwise_);
  project_ = nn::Conv2d(nn::Conv2dOptions(hidden, out, 1).bias(false));
  layers->push_back(project_);
  project_norm_ = make_norm(o.norm(), out, o.bn_eps());
  layers->push_back(project_norm_);
  register_module("conv", layers);
}

at::Tensor InvertedResidualImpl::project(const at::Tensor& x, const at::Tensor& expanded) {
  at::Tensor y = project_norm_.forward(project_->forward(depthwise_->forward(expanded)));
  return residual_ ? x + y : y;
}

at::Tensor InvertedResidualImpl::forward(const at::Tensor& x) {
  return project(x, expand_ ? expand_->forward(x) : x);
}

std::pair<at::Tensor, at::Tensor> InvertedResidualImpl::forward_with_expansion(const at::Tensor& x) {
  if (!expand_) throw std::logic_error("this inverted residual has no expansion layer (t = 1)");
  at::Tensor expanded = expand_->forward(x);
  return {expanded, project(x, expanded)};
}

MobileNetV2Impl::MobileNetV2Impl(const MobileNetV2Options& o) : options_(o) {
  features_ = register_module("features", nn::Sequential());
  auto add = [&](nn::AnyModule block) {
    features_->push_back(block);
    blocks_.push_back(block);
  };
  add(nn::AnyModule(ConvNorm(ConvNormOptions(3, kStemChannels, 3)
                                 .stride(2)
                                 .norm(o.norm())
                                 .bn_eps(o.bn_eps())
                                 .padding(o.padding()))));
  int64_t in = kStemChannels;
  for (const StageSpec& s : kStages)
    for (int64_t r = 0; r < s.n; ++r) {
      add(nn::AnyModule(InvertedResidual(in, s.c, r == 0 ? s.s : 1, s.t, o)));
      in = s.c;
    }
  add(nn::AnyModule(
      ConvNorm(ConvNormOptions(in, kLastChannels, 1).norm(o.norm()).bn_eps(o.bn_eps()).padding(o.padding()))));
  for (int64_t i = 0; i < std::min(o.frozen_blocks(), kNumBlocks); ++i)
    for (auto& p : blocks_[i].ptr()->parameters()) p.set_requires_grad(false);
}

at::Tensor MobileNetV2Impl::forward(const at::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "MobileNetV2 expects images [B, 3, H, W], got ",
              images.sizes());
  return run(images, 0, num_blocks());
}

at::Tensor MobileNetV2Impl::run(at::Tensor x, int64_t begin, int64_t end) {
  TORCH_CHECK(0 <= begin && begin <= end && end <= num_blocks(), "MobileNetV2 blocks [", begin, ", ", end,
              ") out of range");
  for (int64_t i = begin; i < end; ++i) x = blocks_[i].forward(x);
  return x;
}

InvertedResidual MobileNetV2Impl::inverted_residual(int64_t index) const {
  TORCH_CHECK(index >= 1 && index <= 17, "features.", index, " is not an inverted residual");
  return InvertedResidual(blocks_[index].ptr<InvertedResidualImpl>());
}

torch::nn::Sequential MobileNetV2Impl::blocks(int64_t begin, int64_t end) const {
  TORCH_CHECK(0 <= begin && begin < end && end <= num_blocks(), "MobileNetV2 blocks [", begin, ", ", end,
              ") out of range");
  nn::Sequential seq;
  for (int64_t i = begin; i < end; ++i) seq->push_back(blocks_[i]);
  return seq;
}

torch::nn::Sequential MobileNetV2Impl::split_off(int64_t begin) {
  nn::Sequential head = blocks(begin, num_blocks());
  for (int64_t i = begin; i < num_blocks(); ++i) features_->unregister_module(std::to_string(i));
  blocks_.resize(begin);
  return head;
}

int64_t MobileNetV2Impl::channels(int64_t index) { return block_shape(index).first; }
int64_t MobileNetV2Impl::stride(int64_t index) { return block_shape(index).second; }

checkpoint::LoadReport load_torchvision_mobilenet_v2(MobileNetV2Impl& model, const std::string& path,
                                                     checkpoint::Strictness strictness) {
  checkpoint::TensorMap state = checkpoint::load_tensors(path);
  require_torchvision_kind(state, TorchvisionKind::kMobileNetV2, path);
  // The converted ImageNet file has no BN counters (TF keeps none), torchvision's has them:
  // drop the file's and keep the model's own (they only count batches, no statistic reads
  // them with the default momentum).
  drop_bn_counters(state);
  for (const auto& item : model.named_buffers())
    if (util::ends_with(item.key(), ".num_batches_tracked")) state[item.key()] = item.value().detach().clone();
  for (auto it = state.begin(); it != state.end();)
    it = util::starts_with(it->first, "classifier.") ? state.erase(it) : std::next(it);
  return checkpoint::load_state_dict(model, state, strictness, path);
}

}  // namespace psearch::modeling
