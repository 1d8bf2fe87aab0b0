#include "psearch/modeling/two_stage/embedding_head.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/losses/nae_plus.h"

namespace psearch::modeling {
namespace {

namespace nn = torch::nn;

/// FC (or 1x1 conv) then BN, initialised as the official NAE4PS embedding head, except the
/// BN weight with unit_bn (1 instead of N(0, 0.01)).
nn::Sequential projection(int64_t in, int64_t out, bool pixel_wise, bool unit_bn) {
  nn::Sequential seq;
  torch::NoGradGuard no_grad;
  if (pixel_wise) {
    nn::Conv2d conv(nn::Conv2dOptions(in, out, 1));
    conv->weight.normal_(0, 0.01);
    conv->bias.zero_();
    BatchNorm bn(out);
    if (unit_bn) bn->weight.fill_(1.0);
    else bn->weight.normal_(0, 0.01);
    bn->bias.zero_();
    seq->push_back(conv);
    seq->push_back(bn);
  } else {
    nn::Linear fc(in, out);
    fc->weight.normal_(0, 0.01);
    fc->bias.zero_();
    BatchNorm bn(out);
    if (unit_bn) bn->weight.fill_(1.0);
    else bn->weight.normal_(0, 0.01);
    bn->bias.zero_();
    seq->push_back(fc);
    seq->push_back(bn);
  }
  return seq;
}

}  // namespace

EmbeddingHeadImpl::EmbeddingHeadImpl(const EmbeddingHeadOptions& options) : options_(options) {
  TORCH_CHECK(options.dim() > 0, "EmbeddingHead: dim must be positive");
  TORCH_CHECK(options.bn_init() == "official" || options.bn_init() == "unit",
              "EmbeddingHead: bn_init must be official or unit, got ", options.bn_init());
  const bool unit_bn = options.bn_init() == "unit";
  TORCH_CHECK(!options.fuse_res4() || options.dim() % 2 == 0, "EmbeddingHead: fuse_res4 needs an even dim, got ",
              options.dim());
  const int64_t res5_dim = options.fuse_res4() ? options.dim() / 2 : options.dim();
  if (options.fuse_res4())
    proj_res4_ = register_module("proj_res4", projection(options.res4_channels(), options.dim() / 2,
                                                         options.pixel_wise(), unit_bn));
  proj_res5_ = register_module("proj_res5",
                               projection(options.res5_channels(), res5_dim, options.pixel_wise(), unit_bn));
}

at::Tensor EmbeddingHeadImpl::forward(const at::Tensor& res4, const at::Tensor& res5) {
  TORCH_CHECK(res5.dim() == 4 && res5.size(1) == options_.res5_channels(), "EmbeddingHead: res5 must be [K, ",
              options_.res5_channels(), ", k, k], got ", res5.sizes());
  if (options_.fuse_res4())
    TORCH_CHECK(res4.dim() == 4 && res4.size(1) == options_.res4_channels() && res4.size(0) == res5.size(0),
                "EmbeddingHead: res4 must be [K, ", options_.res4_channels(), ", R, R], got ", res4.sizes());
  if (!options_.pixel_wise()) {
    const bool max = options_.feature_pool() == "max";
    auto pool = [max](const at::Tensor& map) { return max ? map.amax({2, 3}) : map.mean({2, 3}); };
    at::Tensor x = proj_res5_->forward(pool(res5));
    if (options_.fuse_res4()) x = at::cat({proj_res4_->forward(pool(res4)), x}, 1);
    return x;
  }
  at::Tensor x = proj_res5_->forward(res5);
  if (options_.fuse_res4()) {
    // Resize before projecting: the same result (both linear per pixel), on 4x fewer pixels.
    const at::Tensor small =
        at::upsample_bilinear2d(res4, {res5.size(2), res5.size(3)}, /*align_corners=*/false);
    x = at::cat({proj_res4_->forward(small), x}, 1);
  }
  return x;
}

void embedding_state_to_pixel_wise(checkpoint::TensorMap& state, const std::string& prefix) {
  for (const char* branch : {"proj_res4", "proj_res5"}) {
    auto it = state.find(prefix + branch + ".0.weight");
    if (it != state.end() && it->second.dim() == 2) it->second = fc_weight_to_conv1x1(it->second);
  }
}

}  // namespace psearch::modeling
