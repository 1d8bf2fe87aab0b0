// Hand-computed cases for nms, batched_nms and roi_align through the C++ wrappers of
// psearch/ops/ops.h (i.e. through the dispatcher, as the model code calls them).
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <vector>

#include "psearch/ops/ops.h"

namespace {

namespace po = psearch::ops;

at::Tensor boxes_of(const std::vector<float>& flat) {
  return at::tensor(flat, at::kFloat).view({-1, 4});
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Box 0 = [0,0,10,10]; box 1 = [1,1,11,11]: IoU(0,1) = 81 / 119 = 0.681;
// box 2 = [0,0,10,5]: IoU(0,2) = 50 / 100 = 0.5, IoU(1,2) = 36 / 114 = 0.316.
// Scores order them 1, 2, 0.
struct ThreeBoxes {
  at::Tensor boxes = boxes_of({0, 0, 10, 10, 1, 1, 11, 11, 0, 0, 10, 5});
  at::Tensor scores = at::tensor(std::vector<float>{0.7f, 0.9f, 0.8f}, at::kFloat);
};

TEST(OpsNms, KeepsByDecreasingScoreAndSuppressesAboveThreshold) {
  ThreeBoxes t;
  EXPECT_EQ(to_vector(po::nms(t.boxes, t.scores, 0.7)), (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(to_vector(po::nms(t.boxes, t.scores, 0.6)), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(to_vector(po::nms(t.boxes, t.scores, 0.3)), (std::vector<int64_t>{1}));
}

TEST(OpsNms, IouEqualToThresholdDoesNotSuppress) {
  // Only boxes 0 and 2 (IoU exactly 0.5): box 2 survives at 0.5 and goes below it.
  const at::Tensor boxes = boxes_of({0, 0, 10, 10, 0, 0, 10, 5});
  const at::Tensor scores = at::tensor(std::vector<double>{0.9, 0.8}, at::kFloat);
  EXPECT_EQ(to_vector(po::nms(boxes, scores, 0.5)), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(to_vector(po::nms(boxes, scores, 0.49)), (std::vector<int64_t>{0}));
}

TEST(OpsNms, EmptyInputGivesEmptyInt64) {
  const at::Tensor keep = po::nms(at::zeros({0, 4}), at::zeros({0}), 0.5);
  EXPECT_EQ(keep.numel(), 0);
  EXPECT_EQ(keep.scalar_type(), at::kLong);
}

TEST(OpsNms, RejectsBadShape) {
  EXPECT_THROW(po::nms(at::zeros({3, 5}), at::zeros({3}), 0.5), c10::Error);
}

TEST(OpsBatchedNms, OverlappingBoxesOfDifferentClassesSurvive) {
  ThreeBoxes t;
  // Boxes 1 and 0 overlap (0.68) but are of different classes; 2 shares 1's class.
  const at::Tensor idxs = at::tensor(std::vector<int64_t>{0, 1, 1}, at::kLong);
  EXPECT_EQ(to_vector(po::batched_nms(t.boxes, t.scores, idxs, 0.3)),
            (std::vector<int64_t>{1, 0}));
  const at::Tensor same = at::tensor(std::vector<int64_t>{4, 4, 4}, at::kLong);
  EXPECT_EQ(to_vector(po::batched_nms(t.boxes, t.scores, same, 0.3)), (std::vector<int64_t>{1}));
}

// Feature map f(c, y, x) = 80 c + 10 y + x on an 8 x 10 grid. Bilinear interpolation of an
// affine function is exact, and the samples of a bin are symmetric about its centre, so
// every bin equals f at the bin centre as long as all samples lie on the map.
at::Tensor ramp(int64_t batch) {
  return at::arange(batch * 2 * 80, at::kFloat).view({batch, 2, 8, 10});
}

void expect_values(const at::Tensor& out, const std::vector<float>& expected) {
  const at::Tensor c = out.contiguous();
  ASSERT_EQ(c.numel(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(c.data_ptr<float>()[i], expected[i], 1e-4) << "element " << i;
  }
}

TEST(OpsRoiAlign, RampGivesBinCentreValues) {
  // RoI x 1..7, y 2..6 cut into 2 x 3 bins of 2 x 2: centres y 3, 5 and x 2, 4, 6.
  const at::Tensor rois = at::tensor(std::vector<float>{0, 1, 2, 7, 6}, at::kFloat).view({1, 5});
  for (const int64_t sampling_ratio : {0, 1, 2, 3}) {
    const at::Tensor out = po::roi_align(ramp(1), rois, 1.0, 2, 3, sampling_ratio, false);
    EXPECT_EQ(out.sizes(), (at::IntArrayRef{1, 2, 2, 3}));
    expect_values(out, {32, 34, 36, 52, 54, 56, 112, 114, 116, 132, 134, 136});
  }
}

TEST(OpsRoiAlign, AlignedShiftsByHalfPixelAndScaleApplies) {
  // Image coordinates x 2..14, y 4..12 at scale 0.5 are the RoI above; aligned moves the
  // centres by -0.5: y 2.5, 4.5 and x 1.5, 3.5, 5.5. The RoI reads batch item 1.
  const at::Tensor rois = at::tensor(std::vector<float>{1, 2, 4, 14, 12}, at::kFloat).view({1, 5});
  const at::Tensor out = po::roi_align(ramp(2), rois, 0.5, 2, 3, 2, true);
  const float b1 = 160;  // batch item 1 starts after 2 channels x 80
  expect_values(out, {b1 + 26.5f, b1 + 28.5f, b1 + 30.5f, b1 + 46.5f, b1 + 48.5f, b1 + 50.5f,
                      b1 + 106.5f, b1 + 108.5f, b1 + 110.5f, b1 + 126.5f, b1 + 128.5f,
                      b1 + 130.5f});
}

TEST(OpsRoiAlign, BorderClampAndFarOutsideSamples) {
  // One 1 x 1 bin, 1 sample per axis, at (y, x) = (7.5, 4.5): past the last row (7) but
  // within one cell of it (y <= H = 8), so it is clamped to y = 7: f = 70 + 4.5. A RoI
  // entirely beyond that margin pools nothing.
  const at::Tensor rois =
      at::tensor(std::vector<float>{0, 4, 7, 5, 8, 0, 20, 20, 30, 30}, at::kFloat).view({2, 5});
  const at::Tensor out = po::roi_align(ramp(1), rois, 1.0, 1, 1, 1, false);
  expect_values(out, {74.5f, 154.5f, 0, 0});
}

TEST(OpsRoiAlign, GradientOfSumCountsBinsWhenSamplesAreInside) {
  // Each bin's sample weights sum to 1, so d(sum(out))/d(input) sums to K * C * bins.
  at::Tensor input = ramp(1);
  input.set_requires_grad(true);
  const at::Tensor rois =
      at::tensor(std::vector<float>{0, 1, 2, 7, 6, 0, 0.5f, 0.5f, 3, 4}, at::kFloat).view({2, 5});
  po::roi_align(input, rois, 1.0, 2, 3, 0, true).sum().backward();
  ASSERT_TRUE(input.grad().defined());
  EXPECT_NEAR(input.grad().sum().item<float>(), 2 * 2 * 6, 1e-4);
}

TEST(OpsRoiAlign, RejectsRoisWithWrongShape) {
  try {
    po::roi_align(ramp(1), at::zeros({3, 4}), 1.0, 2, 2, 0, false);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[K, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
