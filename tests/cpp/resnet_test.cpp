// ResNet backbones against torchvision: same random weights, same input, stage outputs.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cstdio>

#include "psearch/modeling/backbone/resnet.h"
#include "test_util.h"

using namespace psearch::modeling;
using psearch::checkpoint::Strictness;
using psearch::test::fixture;

namespace {

/// max |ours - reference| / max |reference|: relative to the output's scale, so
/// near-zero post-ReLU entries do not inflate it.
double max_relative_error(const at::Tensor& ours, const at::Tensor& reference) {
  return (ours - reference).abs().max().item<double>() / reference.abs().max().item<double>();
}

class ResNetParity : public ::testing::TestWithParam<int> {};

}  // namespace

TEST_P(ResNetParity, StageOutputsMatchTorchvision) {
  const int depth = GetParam();
  const std::string arch = "resnet" + std::to_string(depth);
  ResNet model(ResNetOptions().depth(depth));
  const auto report = load_torchvision_resnet(*model, fixture(arch + ".pth"), Strictness::kStrict);
  EXPECT_TRUE(report.ok());
  model->eval();

  const auto io = psearch::checkpoint::load_tensors(fixture(arch + "_io.pt"));
  torch::NoGradGuard no_grad;
  const FeatureMap out = model->forward(io.at("input"));
  for (const std::string stage : {"C2", "C3", "C4", "C5"}) {
    const at::Tensor& ref = io.at(stage);
    ASSERT_EQ(out.at(stage).sizes(), ref.sizes()) << stage;
    EXPECT_EQ(out.at(stage).size(1), model->channels(stage));
    const double err = max_relative_error(out.at(stage), ref);
    std::printf("[ parity ] %s %s max relative error %.3e\n", arch.c_str(), stage.c_str(), err);
    EXPECT_LE(err, 1e-4) << arch << " " << stage;
  }
}

INSTANTIATE_TEST_SUITE_P(Torchvision, ResNetParity, ::testing::Values(18, 34, 50));

TEST(ResNet, LastStageStopsEarly) {
  ResNet model(ResNetOptions().depth(18).last_stage("C4"));
  torch::NoGradGuard no_grad;
  const auto out = model->forward(at::randn({1, 3, 64, 64}));
  EXPECT_EQ(out.count("C5"), 0u);
  EXPECT_EQ(out.at("C4").sizes(), (std::vector<int64_t>{1, 256, 4, 4}));
  EXPECT_EQ(ResNetImpl::stride("C4"), 16);
}

TEST(ResNet, FreezeAtStopsGradients) {
  ResNet model(ResNetOptions().depth(18).freeze_at(2));
  for (const auto& p : model->named_parameters()) {
    const bool frozen = p.key().rfind("conv1.", 0) == 0 || p.key().rfind("layer1.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), !frozen) << p.key();
  }
}

TEST(ResNet, BatchNormVariantHasTrainableNorm) {
  ResNet model(ResNetOptions().depth(18).norm(NormKind::kBatchNorm));
  EXPECT_EQ(model->named_parameters().contains("bn1.weight"), true);
  ResNet frozen(ResNetOptions().depth(18));
  EXPECT_EQ(frozen->named_parameters().contains("bn1.weight"), false);  // a buffer there
  EXPECT_EQ(frozen->named_buffers().contains("bn1.weight"), true);
}

TEST(ResNet, RejectsBadInputShape) {
  ResNet model(ResNetOptions().depth(18));
  EXPECT_THROW(model->forward(at::randn({1, 1, 32, 32})), c10::Error);
  EXPECT_THROW(ResNet(ResNetOptions().depth(101)), std::invalid_argument);
}

TEST(StateDict, StrictLoadListsEveryOffendingKey) {
  ResNet model(ResNetOptions().depth(18));
  auto state = psearch::checkpoint::load_tensors(fixture("resnet18.pth"));
  state.erase("layer1.0.conv1.weight");
  state.erase("fc.weight");
  state.erase("fc.bias");
  state["extra.weight"] = at::randn({3});
  state["layer2.0.conv2.weight"] = at::randn({1, 2, 3, 3});
  for (auto it = state.begin(); it != state.end();)
    it = it->first.find("num_batches_tracked") != std::string::npos ? state.erase(it) : std::next(it);
  try {
    psearch::checkpoint::load_state_dict(*model, state, Strictness::kStrict, "weights.pth");
    FAIL() << "strict load accepted a mismatching checkpoint";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("weights.pth: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("\n  missing key: layer1.0.conv1.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\n  unexpected key: extra.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\n  shape mismatch: layer2.0.conv2.weight: checkpoint [1, 2, 3, 3] vs model [128, 128, 3, 3]"),
              std::string::npos)
        << msg;
  }
}

TEST(StateDict, NonStrictLoadCopiesWhatFitsAndReports) {
  ResNet model(ResNetOptions().depth(18));
  auto state = psearch::checkpoint::load_tensors(fixture("resnet18.pth"));
  const at::Tensor conv1 = state.at("conv1.weight");
  state["layer2.0.conv2.weight"] = at::randn({1});
  const auto report = psearch::checkpoint::load_state_dict(*model, state, Strictness::kNonStrict, "w.pth");
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.mismatched.size(), 1u);
  EXPECT_EQ(report.missing.size(), 0u);
  EXPECT_EQ(report.unexpected.size(), 2u + 20u);  // fc.weight, fc.bias and 20 num_batches_tracked
  EXPECT_TRUE(model->named_parameters()["conv1.weight"].equal(conv1));
}

TEST(StateDict, CheckpointOfAnotherArchitectureIsRejected) {
  ResNet model(ResNetOptions().depth(50));
  try {
    load_torchvision_resnet(*model, fixture("resnet18.pth"), Strictness::kStrict);
    FAIL() << "a ResNet-18 checkpoint loaded into a ResNet-50";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet18.pth: checkpoint does not match"), std::string::npos);
  }
}
