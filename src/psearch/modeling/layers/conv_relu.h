#pragma once
/// Small building blocks of detection heads, shared by the RPN and the one-stage heads.
#include <ATen/core/Tensor.h>
#include <ATen/ops/relu.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace psearch::modeling {

/// 3x3 conv (padding 1, bias) + ReLU. The conv is registered as "0", so parameters read
/// <name>.0.weight as in torchvision's Conv2dNormActivation without a norm layer (a C++
/// Sequential cannot nest a Sequential the way Python's does).
class ConvReLUImpl : public torch::nn::Module {
 public:
  ConvReLUImpl(int64_t in_channels, int64_t out_channels)
      : conv_(register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 3).padding(1)))) {}
  explicit ConvReLUImpl(int64_t channels) : ConvReLUImpl(channels, channels) {}

  /// [B, in, H, W] -> [B, out, H, W].
  at::Tensor forward(const at::Tensor& x) { return at::relu(conv_->forward(x)); }
  torch::nn::Conv2d conv() const { return conv_; }

 private:
  torch::nn::Conv2d conv_;
};
TORCH_MODULE(ConvReLU);

/// A dense head's output [B, A * C, H, W] (channels c of anchor a at a * C + c) ->
/// [B, H * W * A, C]: the anchors of a cell become consecutive rows, the order in which
/// the anchor generator lists anchors (torchvision's permute-and-reshape).
inline at::Tensor flatten_per_anchor(const at::Tensor& x, int64_t channels_per_anchor) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t a = x.size(1) / channels_per_anchor;
  return x.view({b, a, channels_per_anchor, h, w}).permute({0, 3, 4, 1, 2}).reshape({b, -1, channels_per_anchor});
}

}  // namespace psearch::modeling
