#pragma once
/// Feature pyramid network on a ResNet (or a MobileNetV2, see BackboneWithFPNOptions), with the semantics and parameter names of
/// torchvision 0.26's BackboneWithFPN (torchvision.ops.FeaturePyramidNetwork with
/// LastLevelP6P7), as retinanet_resnet50_fpn builds it: C3, C4, C5 go through 1x1 lateral
/// convs ("inner_blocks"), the top-down path adds each coarser map upsampled by nearest
/// neighbour to the exact size of the finer one, and a 3x3 conv ("layer_blocks") smooths
/// each sum into P3 .. P5. P6 is a stride-2 3x3 conv of P5 (torchvision) or of C5
/// (Detectron / maskrcnn-benchmark RetinaNet, which PCNet's official code uses), and
/// P7 = conv(relu(P6)).
///
/// Parameter names, under the module's own prefix: body.<ResNet names> (conv1, bn1,
/// layer1 ..), fpn.inner_blocks.<i>.0.{weight,bias}, fpn.layer_blocks.<i>.0.{weight,bias},
/// fpn.extra_blocks.p6.{weight,bias}, fpn.extra_blocks.p7.{weight,bias}: so a torchvision
/// RetinaNet state_dict's "backbone.*" entries load one to one.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "psearch/modeling/backbone/resnet.h"

namespace psearch::modeling {

/// Where P6 is computed from.
enum class P6Source { kP5, kC5 };

struct FPNOptions {
  /// Channels of each input map, finest first (C3, C4, C5 of ResNet-50: 512, 1024, 2048).
  TORCH_ARG(std::vector<int64_t>, in_channels);
  /// Channels of every output map.
  TORCH_ARG(int64_t, out_channels) = 256;
  /// Add P6 and P7 (RetinaNet); without them the outputs are the input levels only.
  TORCH_ARG(bool, p6p7) = true;
  TORCH_ARG(P6Source, p6_source) = P6Source::kP5;
};

class FeaturePyramidNetworkImpl : public torch::nn::Module {
 public:
  /// Convs initialised as torchvision: kaiming_uniform_(a=1) weights, zero biases.
  explicit FeaturePyramidNetworkImpl(const FPNOptions& options);

  /// inputs[i]: [B, in_channels[i], H_i, W_i], finest first. Returns the pyramid finest
  /// first, [B, out_channels, H_i, W_i] per input, then P6 and P7 (each halving the size
  /// with a 3x3 stride-2 conv, padding 1) when p6p7 is on.
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs);

  const FPNOptions& options() const { return options_; }

 private:
  FPNOptions options_;
  torch::nn::ModuleList inner_blocks_{nullptr};
  torch::nn::ModuleList layer_blocks_{nullptr};
  torch::nn::Conv2d p6_{nullptr};
  torch::nn::Conv2d p7_{nullptr};
};
TORCH_MODULE(FeaturePyramidNetwork);

struct BackboneWithFPNOptions {
  /// The ResNet body; last_stage is forced to "C5".
  TORCH_ARG(ResNetOptions, resnet);
  /// A MobileNetV2 body instead of the ResNet (model.backbone.arch mobilenet_v2), with
  /// `mobilenet`'s options: stage C3, C4, C5 is the output of features.6 (32 ch),
  /// features.13 (96 ch), features.18 (1280 ch), strides 8, 16, 32, the taps that
  /// torchvision's BackboneWithFPN gets from IntermediateLayerGetter(mobilenet_v2().features,
  /// {"6", "13", "18"}).
  TORCH_ARG(bool, use_mobilenet_v2) = false;
  TORCH_ARG(MobileNetV2Options, mobilenet);
  /// Returned stages, finest first (RetinaNet: C3, C4, C5).
  TORCH_ARG(std::vector<std::string>, stages) = {"C3", "C4", "C5"};
  /// The pyramid; its in_channels are filled in from the stages.
  TORCH_ARG(FPNOptions, fpn);
};

/// A trunk + FPN (torchvision's BackboneWithFPN): parameters body.* (the ResNet's conv1,
/// layer1 .., or the MobileNetV2's features.*) and fpn.*.
class BackboneWithFPNImpl : public torch::nn::Module {
 public:
  explicit BackboneWithFPNImpl(const BackboneWithFPNOptions& options);

  /// images: [B, 3, H, W] normalised. Returns P3 .. P7 (for the default stages), finest
  /// first, each [B, out_channels, ceil(H / s), ceil(W / s)] with s = 8 .. 128.
  std::vector<at::Tensor> forward(const at::Tensor& images);

  /// Strides of the outputs relative to the input (8, 16, 32, 64, 128 by default).
  std::vector<int64_t> strides() const;
  int64_t out_channels() const { return fpn_->options().out_channels(); }

  /// The ResNet body (null for a MobileNetV2 body).
  ResNet body() const { return body_; }
  /// The MobileNetV2 body (null for a ResNet body).
  MobileNetV2 mobilenet_body() const { return mobilenet_; }
  FeaturePyramidNetwork fpn() const { return fpn_; }
  const BackboneWithFPNOptions& options() const { return options_; }

  /// The MobileNetV2 block whose output is `stage` ("C2" .. "C5": 3, 6, 13, 18).
  static int64_t mobilenet_v2_block(const std::string& stage);

 private:
  std::vector<at::Tensor> stage_outputs(const at::Tensor& images);

  BackboneWithFPNOptions options_;
  ResNet body_{nullptr};
  MobileNetV2 mobilenet_{nullptr};
  FeaturePyramidNetwork fpn_{nullptr};
};
TORCH_MODULE(BackboneWithFPN);

}  // namespace psearch::modeling
