// MobileNetV2 (src/psearch/modeling/backbone/mobilenet_v2.h) against torchvision's
// mobilenet_v2 with the same weights and image: tests/python/fixtures_mobilenet.py stores
// torchvision's state_dict (random weights, randomised BN statistics) and the outputs of
// several blocks; with the converted ImageNet file present, those of the real weights too.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/backbone/fpn.h"
#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "fixture_file.h"
#include "test_util.h"

namespace pm = psearch::modeling;
namespace ck = psearch::checkpoint;

namespace {

at::Tensor get(const std::string& key) {
  static const psearch::test::FixtureFile file("mobilenet_v2.pt");
  return file.get(key);
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

/// Runs features.0 .. features.18 block by block and compares the tapped outputs.
double worst_block_error(pm::MobileNetV2Impl& model, const std::string& prefix) {
  c10::NoGradGuard no_grad;
  at::Tensor x = get("image");
  double worst = 0;
  int compared = 0;
  for (int64_t i = 0; i < pm::MobileNetV2Impl::kNumBlocks; ++i) {
    x = model.run(x, i, i + 1);
    EXPECT_EQ(x.size(1), pm::MobileNetV2Impl::channels(i)) << "features." << i;
    if (i != 3 && i != 6 && i != 13 && i != 17 && i != 18) continue;
    const at::Tensor expected = get(prefix + "features." + std::to_string(i));
    EXPECT_EQ(x.sizes(), expected.sizes()) << "features." << i;
    const double err = relative_error(x, expected);
    std::cout << "[ parity   ] " << prefix << "features." << i << " max rel error " << err << "\n";
    worst = std::max(worst, err);
    ++compared;
  }
  EXPECT_EQ(compared, 5);
  return worst;
}

std::string imagenet_file() {
  const char* dir = std::getenv("PSEARCH_WEIGHTS_DIR");
  const std::string base = dir && *dir ? dir : std::string(std::getenv("HOME")) + "/.cache/psearch/weights";
  return base + "/mobilenet_v2_imagenet.pth";
}

}  // namespace

TEST(MobileNetV2Parity, TorchvisionStateDictGivesTorchvisionFeatures) {
  pm::MobileNetV2 model;
  const ck::LoadReport report = pm::load_torchvision_mobilenet_v2(
      *model, psearch::test::fixture("mobilenet_v2_random.pth"), ck::Strictness::kStrict);
  EXPECT_TRUE(report.ok()) << report.describe();
  model->eval();
  EXPECT_LT(worst_block_error(*model, ""), 1e-4);
}

TEST(MobileNetV2Parity, ConvertedImageNetFileGivesTorchvisionFeatures) {
  if (!std::filesystem::exists(imagenet_file())) GTEST_SKIP() << imagenet_file() << " not converted (scripts/setup.sh)";
  pm::MobileNetV2 model;
  pm::load_torchvision_mobilenet_v2(*model, imagenet_file(), ck::Strictness::kStrict);
  model->eval();
  EXPECT_LT(worst_block_error(*model, "imagenet."), 1e-4);
}

TEST(MobileNetV2, StridesAndChannelsFollowTheTable) {
  EXPECT_EQ(pm::MobileNetV2Impl::stride(13), 16);
  EXPECT_EQ(pm::MobileNetV2Impl::channels(13), 96);
  EXPECT_EQ(pm::MobileNetV2Impl::stride(14), 32);
  EXPECT_EQ(pm::MobileNetV2Impl::channels(14), 160);
  EXPECT_EQ(pm::MobileNetV2Impl::channels(18), 1280);
  pm::MobileNetV2 model;
  const at::Tensor y = model->forward(at::randn({1, 3, 64, 96}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 1280, 2, 3}));
}

TEST(MobileNetV2, TensorFlowSamePaddingPadsStrideTwoConvsAfterOnly) {
  // A 3x3 stride-2 conv on 8 pixels: TF pads 0 before and 1 after, torchvision 1 and 1.
  // With an all-ones kernel and input ones, output (0, 0) sums 4 pixels under symmetric
  // padding and 9 under TF's.
  pm::ConvNorm tf(pm::ConvNormOptions(1, 1, 3).stride(2).relu6(false).padding(pm::ConvPadding::kTensorFlowSame));
  pm::ConvNorm torch_pad(pm::ConvNormOptions(1, 1, 3).stride(2).relu6(false));
  c10::NoGradGuard no_grad;
  for (auto* m : {&tf, &torch_pad}) (*m)->named_parameters()["0.weight"].fill_(1.0);
  const at::Tensor x = at::ones({1, 1, 8, 8});
  const at::Tensor a = tf->forward(x), b = torch_pad->forward(x);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{1, 1, 4, 4}));
  ASSERT_EQ(b.sizes(), a.sizes());
  EXPECT_NEAR(a[0][0][0][0].item<double>(), 9.0 / std::sqrt(1 + 1e-5), 1e-4);
  EXPECT_NEAR(b[0][0][0][0].item<double>(), 4.0 / std::sqrt(1 + 1e-5), 1e-4);
  EXPECT_NEAR(a[0][0][3][3].item<double>(), 4.0 / std::sqrt(1 + 1e-5), 1e-4);  // the padded corner
}

TEST(MobileNetV2, AnotherKindOfFileIsNamedInOneLine) {
  const std::string path = psearch::test::fixture("resnet18.pth");
  const std::string error = psearch::test::error_of([&] {
    pm::MobileNetV2 model;
    pm::load_torchvision_mobilenet_v2(*model, path, ck::Strictness::kStrict);
  });
  EXPECT_NE(error.find(path + ": is a torchvision ResNet classifier checkpoint, not a torchvision MobileNetV2"),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

// The PCNet trunk on MobileNetV2 (model.backbone.arch mobilenet_v2): C3, C4, C5 tapped
// after features.6, 13, 18 into an FPN with P6, P7, against torchvision's BackboneWithFPN
// over the same features with the same weights; the file's names are ours one to one.
TEST(MobileNetV2Parity, FeaturePyramidEqualsTorchvisionBackboneWithFPN) {
  pm::BackboneWithFPN trunk(pm::BackboneWithFPNOptions().use_mobilenet_v2(true));
  const ck::LoadReport report = ck::load_state_dict(
      *trunk, ck::load_tensors(psearch::test::fixture("mobilenet_v2_fpn.pth")), ck::Strictness::kStrict, "fpn file");
  EXPECT_TRUE(report.ok()) << report.describe();
  trunk->eval();
  EXPECT_EQ(trunk->strides(), (std::vector<int64_t>{8, 16, 32, 64, 128}));
  c10::NoGradGuard no_grad;
  const std::vector<at::Tensor> levels = trunk->forward(get("image"));
  ASSERT_EQ(levels.size(), 5u);
  for (size_t l = 0; l < levels.size(); ++l) {
    const at::Tensor expected = get("fpn." + std::to_string(l));
    ASSERT_EQ(levels[l].sizes(), expected.sizes()) << "P" << l + 3;
    const double err = relative_error(levels[l], expected);
    std::cout << "[ parity   ] MobileNetV2 FPN P" << l + 3 << " max rel error " << err << "\n";
    EXPECT_LT(err, 1e-4) << "P" << l + 3;
  }
}
