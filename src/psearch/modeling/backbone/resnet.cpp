#include "psearch/modeling/backbone/resnet.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/relu.h>
#include <torch/nn/modules/batchnorm.h>

#include <stdexcept>

#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/layers/frozen_batch_norm.h"
#include "psearch/modeling/torchvision_files.h"
#include "psearch/util/strings.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

const std::vector<std::string> kStages = {"C2", "C3", "C4", "C5"};

int stage_index(const std::string& stage) {
  for (size_t i = 0; i < kStages.size(); ++i)
    if (kStages[i] == stage) return static_cast<int>(i);
  throw std::invalid_argument("unknown ResNet stage '" + stage + "' (expected C2, C3, C4 or C5)");
}

nn::AnyModule make_norm(NormKind kind, int64_t channels) {
  if (kind == NormKind::kFrozen) return nn::AnyModule(FrozenBatchNorm2d(channels));
  return nn::AnyModule(BatchNorm(channels));
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

/// The shortcut branch when shape changes: 1x1 conv + norm, named "0" and "1" as torchvision.
nn::Sequential downsample(int64_t in, int64_t out, int64_t stride, NormKind norm) {
  nn::Sequential seq;
  seq->push_back(conv(in, out, 1, stride));
  seq->push_back(make_norm(norm, out));
  return seq;
}

/// Two 3x3 convs (ResNet-18/34).
class BasicBlockImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t width, int64_t stride, NormKind norm) {
    conv1_ = register_module("conv1", conv(in, width, 3, stride));
    bn1_ = make_norm(norm, width);
    register_module("bn1", bn1_.ptr());
    conv2_ = register_module("conv2", conv(width, width, 3, 1));
    bn2_ = make_norm(norm, width);
    register_module("bn2", bn2_.ptr());
    if (stride != 1 || in != width) downsample_ = register_module("downsample", downsample(in, width, stride, norm));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1_.forward(conv1_->forward(x)));
    y = bn2_.forward(conv2_->forward(y));
    return at::relu(y + (downsample_ ? downsample_->forward(x) : x));
  }

 private:
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  nn::AnyModule bn1_, bn2_;
  nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(BasicBlock);

/// 1x1 reduce, 3x3 (carrying the stride, "ResNet v1.5"), 1x1 expand (ResNet-50).
class BottleneckImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t width, int64_t stride, NormKind norm) {
    const int64_t out = width * kExpansion;
    conv1_ = register_module("conv1", conv(in, width, 1, 1));
    bn1_ = make_norm(norm, width);
    register_module("bn1", bn1_.ptr());
    conv2_ = register_module("conv2", conv(width, width, 3, stride));
    bn2_ = make_norm(norm, width);
    register_module("bn2", bn2_.ptr());
    conv3_ = register_module("conv3", conv(width, out, 1, 1));
    bn3_ = make_norm(norm, out);
    register_module("bn3", bn3_.ptr());
    if (stride != 1 || in != out) downsample_ = register_module("downsample", downsample(in, out, stride, norm));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1_.forward(conv1_->forward(x)));
    y = at::relu(bn2_.forward(conv2_->forward(y)));
    y = bn3_.forward(conv3_->forward(y));
    return at::relu(y + (downsample_ ? downsample_->forward(x) : x));
  }

 private:
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  nn::AnyModule bn1_, bn2_, bn3_;
  nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Bottleneck);

std::vector<int64_t> blocks_per_stage(int64_t depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    default: throw std::invalid_argument("unsupported ResNet depth " + std::to_string(depth) + " (18, 34 or 50)");
  }
}

template <typename Block>
nn::Sequential make_stage(int64_t& in, int64_t width, int64_t blocks, int64_t stride, NormKind norm) {
  nn::Sequential stage;
  for (int64_t i = 0; i < blocks; ++i) {
    stage->push_back(Block(in, width, i == 0 ? stride : 1, norm));
    in = width * Block::Impl::kExpansion;
  }
  return stage;
}

}  // namespace

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  const auto blocks = blocks_per_stage(options.depth());
  stage_index(options.last_stage());  // validates the name early
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = make_norm(options.norm(), 64);
  register_module("bn1", bn1.ptr());
  maxpool = register_module("maxpool", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t in = 64;
  const int64_t widths[] = {64, 128, 256, 512};
  for (int i = 0; i < 4; ++i) {
    const int64_t stride = i == 0 ? 1 : 2;
    nn::Sequential stage = options.depth() >= 50
                               ? make_stage<Bottleneck>(in, widths[i], blocks[i], stride, options.norm())
                               : make_stage<BasicBlock>(in, widths[i], blocks[i], stride, options.norm());
    layers_.push_back(register_module("layer" + std::to_string(i + 1), stage));
  }
  freeze();
}

void ResNetImpl::freeze() {
  if (options_.freeze_at() <= 0) return;
  auto stop_grad = [](nn::Module& m) {
    for (auto& p : m.parameters()) p.set_requires_grad(false);
  };
  stop_grad(*conv1);
  stop_grad(*bn1.ptr());
  for (int64_t i = 0; i + 2 <= options_.freeze_at() && i < 4; ++i) stop_grad(*layers_[i]);
}

FeatureMap ResNetImpl::forward(const at::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "ResNet expects images [B, 3, H, W], got ",
              images.sizes());
  at::Tensor x = maxpool->forward(at::relu(bn1.forward(conv1->forward(images))));
  FeatureMap out;
  const int last = stage_index(options_.last_stage());
  for (int i = 0; i <= last; ++i) {
    x = layers_[i]->forward(x);
    out[kStages[i]] = x;
  }
  return out;
}

int64_t ResNetImpl::channels(const std::string& stage) const {
  const int64_t expansion = options_.depth() >= 50 ? 4 : 1;
  return (int64_t{64} << stage_index(stage)) * expansion;
}

int64_t ResNetImpl::stride(const std::string& stage) { return int64_t{4} << stage_index(stage); }

torch::nn::Sequential ResNetImpl::layer(int index) const {
  TORCH_CHECK(index >= 1 && index <= 4, "ResNet has layer1 .. layer4, asked for layer", index);
  return layers_[index - 1];
}

checkpoint::LoadReport load_torchvision_resnet(ResNetImpl& model, const std::string& path,
                                               checkpoint::Strictness strictness) {
  checkpoint::TensorMap state = checkpoint::load_tensors(path);
  require_torchvision_kind(state, TorchvisionKind::kResNet, path);
  const bool frozen = model.options().norm() == NormKind::kFrozen;
  const std::string counter = ".num_batches_tracked";
  for (auto it = state.begin(); it != state.end();) {
    const std::string& key = it->first;
    const bool classifier = util::starts_with(key, "fc.");
    const bool bn_counter = frozen && key.size() > counter.size() && util::ends_with(key, counter);
    it = (classifier || bn_counter) ? state.erase(it) : std::next(it);
  }
  return checkpoint::load_state_dict(model, state, strictness, path);
}

}  // namespace psearch::modeling
