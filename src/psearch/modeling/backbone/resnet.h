#pragma once
/// ResNet-18/34/50 backbones with torchvision's module names (conv1, bn1, layer1.0.conv1,
/// layer1.0.downsample.0, ...), so torchvision checkpoints load key for key.
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

#include "psearch/checkpoint/state_dict.h"

namespace psearch::modeling {

/// How the backbone normalises: frozen statistics (detection fine-tuning, the default)
/// or trainable torch::nn::BatchNorm2d.
enum class NormKind { kFrozen, kBatchNorm };

struct ResNetOptions {
  /// 18, 34 (basic blocks) or 50 (bottleneck blocks, stride on the 3x3 conv as torchvision).
  TORCH_ARG(int64_t, depth) = 50;
  TORCH_ARG(NormKind, norm) = NormKind::kFrozen;
  /// Stages whose parameters get requires_grad = false: 0 none, 1 the stem (conv1),
  /// k >= 2 the stem and layer1 .. layer(k-1), as detectron2's FREEZE_AT.
  TORCH_ARG(int64_t, freeze_at) = 0;
  /// Deepest stage to compute, "C2" .. "C5"; a C4 detector stops at "C4" and runs
  /// layer4 on RoIs instead.
  TORCH_ARG(std::string, last_stage) = "C5";
};

/// Stage outputs by name: "C2" (stride 4) to "C5" (stride 32), each [B, C, H/s, W/s].
using FeatureMap = std::map<std::string, at::Tensor>;

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options = {});

  /// images: [B, 3, H, W] (normalised) -> stage outputs up to options.last_stage.
  FeatureMap forward(const at::Tensor& images);

  /// Channels of a stage output, e.g. 1024 for "C4" of ResNet-50.
  int64_t channels(const std::string& stage) const;
  /// Stride of a stage output relative to the input, e.g. 16 for "C4".
  static int64_t stride(const std::string& stage);

  /// layer1 .. layer4 (index 1 .. 4), e.g. to reuse layer4 as a RoI head.
  torch::nn::Sequential layer(int index) const;

  const ResNetOptions& options() const { return options_; }

 private:
  void freeze();

  ResNetOptions options_;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::AnyModule bn1;
  torch::nn::MaxPool2d maxpool{nullptr};
  std::vector<torch::nn::Sequential> layers_;
};
TORCH_MODULE(ResNet);

/// Loads a torchvision ResNet checkpoint (a torch.save'd state_dict, e.g.
/// resnet50-0676ba61.pth) into `model`. The classifier (fc.*) is dropped, and with frozen
/// BN so are the `num_batches_tracked` counters; every other key must match unless
/// kNonStrict is asked for. Throws std::runtime_error naming `path` and listing each
/// offending key.
checkpoint::LoadReport load_torchvision_resnet(ResNetImpl& model, const std::string& path,
                                               checkpoint::Strictness strictness);

}  // namespace psearch::modeling
