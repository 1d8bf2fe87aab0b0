// Mixed precision: the ops' autocast registrations (they compute in float32 and hand the
// autocast dtype on) and the fp16 loss scaler (torch.amp.GradScaler's rule).
#include <ATen/TensorOperators.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "psearch/engine/mixed_precision.h"
#include "psearch/ops/ops.h"

namespace psearch {
namespace {

TEST(OpsUnderAutocast, RoiAlignComputesInFloatAndReturnsTheInputDtype) {
  at::manual_seed(1);
  const at::Tensor features = at::randn({1, 4, 16, 16}).to(at::kBFloat16);
  const at::Tensor rois = at::tensor({0.0f, 1.3f, 2.7f, 11.1f, 13.9f, 0.0f, 4.0f, 0.5f, 9.5f, 15.0f}).view({2, 5});
  // The reference: float32 RoIAlign of the same (bfloat16-valued) features, rounded once.
  const at::Tensor expected = ops::roi_align(features.to(at::kFloat), rois, 1.0, 3, 3, 2, true).to(at::kBFloat16);
  at::Tensor pooled;
  {
    engine::AutocastScope autocast(c10::Device(c10::kCPU), at::kBFloat16);
    pooled = ops::roi_align(features, rois, 1.0, 3, 3, 2, true);
  }
  EXPECT_EQ(pooled.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(pooled, expected));
}

TEST(OpsUnderAutocast, DeformConvReturnsTheAutocastDtypeLikeAConvolution) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({1, 3, 8, 8}), w = at::randn({5, 3, 3, 3}) * 0.2, b = at::randn({5});
  const at::Tensor zero_offset = at::zeros({1, 18, 8, 8});
  at::Tensor deformed, plain;
  {
    engine::AutocastScope autocast(c10::Device(c10::kCPU), at::kBFloat16);
    deformed = ops::deform_conv2d(x, w, zero_offset, at::Tensor(), b, 1, 1, 1, 1, 1, 1, 1, 1);
    plain = at::conv2d(x, w, b, 1, 1);
  }
  EXPECT_EQ(deformed.scalar_type(), plain.scalar_type());
  EXPECT_EQ(deformed.scalar_type(), at::kBFloat16);
  // Zero offsets make it a convolution; it was computed in float32 and rounded once.
  const at::Tensor reference = at::conv2d(x, w, b, 1, 1).to(at::kBFloat16);
  EXPECT_TRUE(at::allclose(deformed.to(at::kFloat), reference.to(at::kFloat), 1e-2, 1e-2));
}

TEST(OpsUnderAutocast, NmsKeepsTheSameBoxesAsInFloat) {
  const at::Tensor boxes = at::tensor({0.0f, 0.0f, 100.0f, 100.0f, 1.0f, 1.0f, 101.0f, 101.0f, 200.0f, 0.0f, 300.0f,
                                       90.0f}).view({3, 4});
  const at::Tensor scores = at::tensor({0.9f, 0.8f, 0.7f});
  const at::Tensor expected = ops::nms(boxes, scores, 0.5);
  engine::AutocastScope autocast(c10::Device(c10::kCPU), at::kBFloat16);
  EXPECT_TRUE(at::equal(ops::nms(boxes.to(at::kBFloat16), scores.to(at::kBFloat16), 0.5), expected));
}

TEST(LossScaler, CleanGradientsAreUnscaledAndTheScaleGrowsAfterTheInterval) {
  engine::LossScaler scaler(c10::Device(c10::kCPU), 1024.0, 2.0, 0.5, /*growth_interval=*/2);
  at::Tensor p = at::ones({3}).requires_grad_();
  for (int step = 1; step <= 2; ++step) {
    p.mutable_grad() = at::Tensor();
    scaler.scale((p * at::tensor({1.0f, 2.0f, 3.0f})).sum()).backward();
    const double scale = scaler.current_scale();
    EXPECT_FALSE(scaler.unscale_and_update({p}));
    EXPECT_TRUE(at::allclose(p.grad(), at::tensor({1.0f, 2.0f, 3.0f}))) << "step " << step << " scale " << scale;
  }
  EXPECT_EQ(scaler.current_scale(), 2048.0);  // two clean steps in a row
}

TEST(LossScaler, AnOverflowSkipsTheStepAndHalvesTheScale) {
  engine::LossScaler scaler(c10::Device(c10::kCPU), 1024.0);
  at::Tensor p = at::ones({2}).requires_grad_(), q = at::ones({2}).requires_grad_();
  p.mutable_grad() = at::tensor({1.0f, std::numeric_limits<float>::infinity()});
  q.mutable_grad() = at::tensor({2.0f, 4.0f});
  EXPECT_TRUE(scaler.unscale_and_update({p, q}));
  EXPECT_EQ(scaler.current_scale(), 512.0);
  q.mutable_grad() = at::tensor({2.0f, 4.0f});
  p.mutable_grad() = at::tensor({1.0f, std::numeric_limits<float>::quiet_NaN()});
  EXPECT_TRUE(scaler.unscale_and_update({p, q}));
  EXPECT_EQ(scaler.current_scale(), 256.0);
}

TEST(AutocastScope, RestoresThePreviousState) {
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCPU));
  {
    engine::AutocastScope outer(c10::Device(c10::kCPU), at::kBFloat16);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::kCPU));
    engine::AutocastScope none(c10::Device(c10::kCPU), at::kFloat);  // fp32: changes nothing
    EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::kCPU));
    EXPECT_EQ(at::conv2d(at::randn({1, 1, 4, 4}), at::randn({1, 1, 3, 3})).scalar_type(), at::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCPU));
}

}  // namespace
}  // namespace psearch
