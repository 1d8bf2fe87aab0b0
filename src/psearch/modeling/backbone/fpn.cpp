#include "psearch/modeling/backbone/fpn.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/upsample_nearest2d.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/sequential.h>

#include <stdexcept>

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

nn::Conv2d make_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  nn::Conv2d conv(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2));
  nn::init::kaiming_uniform_(conv->weight, /*a=*/1);
  nn::init::zeros_(conv->bias);
  return conv;
}

/// A conv registered as "0" of a Sequential, as torchvision's Conv2dNormActivation without
/// norm and activation names it (inner_blocks.<i>.0.weight).
nn::Sequential wrapped_conv(int64_t in, int64_t out, int64_t kernel) {
  nn::Sequential seq;
  seq->push_back(make_conv(in, out, kernel, 1));
  return seq;
}

}  // namespace

FeaturePyramidNetworkImpl::FeaturePyramidNetworkImpl(const FPNOptions& options) : options_(options) {
  TORCH_CHECK(!options.in_channels().empty(), "FeaturePyramidNetwork needs at least one input level");
  inner_blocks_ = register_module("inner_blocks", nn::ModuleList());
  layer_blocks_ = register_module("layer_blocks", nn::ModuleList());
  for (const int64_t in : options.in_channels()) {
    inner_blocks_->push_back(wrapped_conv(in, options.out_channels(), 1));
    layer_blocks_->push_back(wrapped_conv(options.out_channels(), options.out_channels(), 3));
  }
  if (options.p6p7()) {
    const int64_t p6_in =
        options.p6_source() == P6Source::kP5 ? options.out_channels() : options.in_channels().back();
    auto extra = register_module("extra_blocks", std::make_shared<nn::Module>());
    p6_ = extra->register_module("p6", make_conv(p6_in, options.out_channels(), 3, 2));
    p7_ = extra->register_module("p7", make_conv(options.out_channels(), options.out_channels(), 3, 2));
  }
}

std::vector<at::Tensor> FeaturePyramidNetworkImpl::forward(const std::vector<at::Tensor>& inputs) {
  const size_t n = inputs.size();
  TORCH_CHECK(n == inner_blocks_->size(), "FeaturePyramidNetwork expects ", inner_blocks_->size(), " levels, got ", n);
  std::vector<at::Tensor> out(n);
  at::Tensor last_inner = inner_blocks_[n - 1]->as<nn::Sequential>()->forward(inputs[n - 1]);
  out[n - 1] = layer_blocks_[n - 1]->as<nn::Sequential>()->forward(last_inner);
  for (size_t i = n - 1; i-- > 0;) {
    const at::Tensor lateral = inner_blocks_[i]->as<nn::Sequential>()->forward(inputs[i]);
    // Nearest upsampling to the finer map's exact size (odd sizes included), as
    // F.interpolate(size=..., mode="nearest").
    last_inner = lateral + at::upsample_nearest2d(last_inner, {lateral.size(2), lateral.size(3)});
    out[i] = layer_blocks_[i]->as<nn::Sequential>()->forward(last_inner);
  }
  if (options_.p6p7()) {
    const at::Tensor p6 = p6_->forward(options_.p6_source() == P6Source::kP5 ? out.back() : inputs.back());
    out.push_back(p6);
    out.push_back(p7_->forward(at::relu(p6)));
  }
  return out;
}

BackboneWithFPNImpl::BackboneWithFPNImpl(const BackboneWithFPNOptions& options) : options_(options) {
  std::vector<int64_t> channels;
  if (options.use_mobilenet_v2()) {
    mobilenet_ = register_module("body", MobileNetV2(options.mobilenet()));
    for (const auto& stage : options.stages()) channels.push_back(MobileNetV2Impl::channels(mobilenet_v2_block(stage)));
  } else {
    ResNetOptions resnet = options.resnet();
    resnet.last_stage("C5");
    body_ = register_module("body", ResNet(resnet));
    for (const auto& stage : options.stages()) channels.push_back(body_->channels(stage));
  }
  FPNOptions fpn = options.fpn();
  fpn_ = register_module("fpn", FeaturePyramidNetwork(fpn.in_channels(channels)));
}

int64_t BackboneWithFPNImpl::mobilenet_v2_block(const std::string& stage) {
  if (stage == "C2") return 3;
  if (stage == "C3") return 6;
  if (stage == "C4") return 13;
  if (stage == "C5") return 18;
  throw std::invalid_argument("MobileNetV2 has no stage '" + stage + "' (C2 .. C5)");
}

std::vector<at::Tensor> BackboneWithFPNImpl::stage_outputs(const at::Tensor& images) {
  std::vector<at::Tensor> outputs;
  if (body_) {
    const FeatureMap stages = body_->forward(images);
    for (const auto& stage : options_.stages()) outputs.push_back(stages.at(stage));
    return outputs;
  }
  // Blocks run once, in order; each stage's output is taken on the way (stages finest first).
  at::Tensor x = images;
  int64_t next = 0;
  for (const auto& stage : options_.stages()) {
    const int64_t block = mobilenet_v2_block(stage);
    x = mobilenet_->run(x, next, block + 1);
    next = block + 1;
    outputs.push_back(x);
  }
  return outputs;
}

std::vector<at::Tensor> BackboneWithFPNImpl::forward(const at::Tensor& images) {
  return fpn_->forward(stage_outputs(images));
}

std::vector<int64_t> BackboneWithFPNImpl::strides() const {
  std::vector<int64_t> out;
  for (const auto& stage : options_.stages())
    out.push_back(body_ ? ResNetImpl::stride(stage) : MobileNetV2Impl::stride(mobilenet_v2_block(stage)));
  if (fpn_->options().p6p7()) {
    out.push_back(out.back() * 2);
    out.push_back(out.back() * 2);
  }
  return out;
}

}  // namespace psearch::modeling
