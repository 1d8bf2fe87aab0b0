// Box utilities (src/psearch/boxes) against hand-computed values and against torchvision,
// whose results tests/python/fixtures_boxes.py stores in <fixtures>/boxes.pt.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "psearch/boxes/anchor_generator.h"
#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/box_ops.h"
#include "psearch/boxes/matcher.h"
#include "psearch/boxes/sampler.h"
#include "psearch/checkpoint/torch_file.h"
#include "test_util.h"

namespace pb = psearch::boxes;

namespace {

using psearch::test::error_of;

// ---------------------------------------------------------------------------------------
// Helpers

at::Tensor t2(std::vector<std::array<double, 4>> rows, at::ScalarType dtype = at::kFloat) {
  std::vector<double> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  // Built in float64 and converted: at::tensor has no half-precision overload.
  return at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).reshape({-1, 4}).to(dtype);
}

at::Tensor t1(std::vector<double> v, at::ScalarType dtype = at::kFloat) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

at::Tensor t1i(std::vector<int64_t> v) { return at::tensor(v, at::TensorOptions().dtype(at::kLong)); }

// [n, 4] valid boxes with sides in [1, 51).
at::Tensor random_boxes(int64_t n, at::ScalarType dtype = at::kFloat) {
  const at::Tensor xy = at::rand({n, 2}, at::kDouble).mul(100);
  const at::Tensor wh = at::rand({n, 2}, at::kDouble).mul(50).add(1);
  return at::cat({xy, xy.add(wh)}, 1).to(dtype);
}

// Largest |a - b| in float64; NaN if a NaN appears in only one of them.
double max_abs_err(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  const at::Tensor x = a.to(at::kDouble);
  const at::Tensor y = b.to(at::kDouble);
  const at::Tensor both_nan = x.isnan().logical_and(y.isnan());
  const at::Tensor d = x.sub(y).abs().masked_fill(both_nan, 0.0);
  return d.max().item<double>();
}

// Exact equality of values, shape and dtype (NaN == NaN), with a readable failure.
::testing::AssertionResult same(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  if (got.scalar_type() != want.scalar_type()) {
    return ::testing::AssertionFailure() << "dtype " << got.scalar_type() << " vs " << want.scalar_type();
  }
  const bool eq = at::isFloatingType(got.scalar_type())
                      ? at::allclose(got, want, /*rtol=*/0.0, /*atol=*/0.0, /*equal_nan=*/true)
                      : at::equal(got, want);
  if (eq) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "values differ, max |err| = " << max_abs_err(got, want);
}

// Logs the error against torchvision so that test output records it.
void report(const std::string& what, double err) {
  std::cout << "[ oracle   ] " << what << ": max |err| vs torchvision = " << err << "\n";
}

const psearch::checkpoint::TensorMap& fixtures() {
  static const psearch::checkpoint::TensorMap m =
      psearch::checkpoint::load_tensors(psearch::test::fixture("boxes.pt"));
  return m;
}

at::Tensor fx(const std::string& key) {
  const auto& m = fixtures();
  const auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error("boxes.pt has no key " + key);
  return it->second;
}

// ---------------------------------------------------------------------------------------
// box_ops by hand

TEST(BoxOps, IouTwoByTwoByHand) {
  // (0,0): overlap [1,0,2,2] = 2, union 4 + 4 - 2 = 6.  (0,1): touching edges, IoU 0.
  // (1,0): overlap [1,1,3,2] = 2, union 6 + 4 - 2 = 8.
  // (1,1): overlap [2,1,3,2] = 1, union 6 + 4 - 1 = 9.
  const at::Tensor b1 = t2({{0, 0, 2, 2}, {1, 1, 3, 4}});
  const at::Tensor b2 = t2({{1, 0, 3, 2}, {2, 0, 4, 2}});
  const at::Tensor iou = pb::box_iou(b1, b2);
  ASSERT_EQ(iou.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(iou[0][0].item<float>(), 2.0f / 6.0f);
  EXPECT_FLOAT_EQ(iou[0][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(iou[1][0].item<float>(), 2.0f / 8.0f);
  EXPECT_FLOAT_EQ(iou[1][1].item<float>(), 1.0f / 9.0f);
  // Symmetric.
  EXPECT_TRUE(same(pb::box_iou(b2, b1), iou.t().contiguous()));
}

TEST(BoxOps, IouEmptyAndIntegerInputs) {
  EXPECT_EQ(pb::box_iou(at::zeros({0, 4}), t2({{0, 0, 1, 1}})).sizes(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(pb::box_iou(t2({{0, 0, 1, 1}}), at::zeros({0, 4})).sizes(), (std::vector<int64_t>{1, 0}));
  // Integer boxes give a float32 IoU (true division), as torchvision.
  const at::Tensor iou = pb::box_iou(t2({{0, 0, 2, 2}}, at::kLong), t2({{1, 0, 3, 2}}, at::kLong));
  EXPECT_EQ(iou.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(iou.item<float>(), 2.0f / 6.0f);
}

TEST(BoxOps, AreaClipRemoveSmallByHand) {
  EXPECT_TRUE(same(pb::box_area(t2({{0, 0, 2, 3}, {1, 1, 1, 5}})), t1({6, 0})));
  // Half precision is widened to float32 before multiplying (300 * 300 overflows half).
  EXPECT_TRUE(same(pb::box_area(t2({{0, 0, 300, 300}}, at::kHalf)), t1({90000})));

  const at::Tensor clipped = pb::clip_boxes_to_image(t2({{-5, -5, 50, 30}, {10, 20, 130, 120}}), {100, 120});
  EXPECT_TRUE(same(clipped, t2({{0, 0, 50, 30}, {10, 20, 120, 100}})));
  // [..., 4] input keeps its shape.
  EXPECT_EQ(pb::clip_boxes_to_image(at::zeros({2, 3, 4}), {10, 10}).sizes(),
            (std::vector<int64_t>{2, 3, 4}));

  // min_size is inclusive: width exactly 2 is kept.
  const at::Tensor boxes = t2({{0, 0, 2, 5}, {0, 0, 1.9, 5}, {0, 0, 5, 1}, {3, 3, 10, 10}});
  EXPECT_TRUE(same(pb::remove_small_boxes(boxes, 2.0), t1i({0, 3})));
}

TEST(BoxOps, BadShapesNameTheShape) {
  std::string msg = error_of([] { pb::box_iou(at::zeros({3, 5}), at::zeros({2, 4})); });
  EXPECT_NE(msg.find("box_iou"), std::string::npos) << msg;
  EXPECT_NE(msg.find("boxes1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 5]"), std::string::npos) << msg;
  msg = error_of([] { pb::box_iou(at::zeros({2, 4}), at::zeros({4})); });
  EXPECT_NE(msg.find("boxes2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4]"), std::string::npos) << msg;
  msg = error_of([] { pb::box_iou(at::Tensor(), at::zeros({2, 4})); });
  EXPECT_NE(msg.find("undefined"), std::string::npos) << msg;
  msg = error_of([] { pb::box_area(at::zeros({2, 3})); });
  EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
  msg = error_of([] { pb::clip_boxes_to_image(at::zeros({2, 4, 2}), {10, 10}); });
  EXPECT_NE(msg.find("[2, 4, 2]"), std::string::npos) << msg;
  msg = error_of([] { pb::remove_small_boxes(at::zeros({7}), 1.0); });
  EXPECT_NE(msg.find("[7]"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------
// BoxCoder by hand

TEST(BoxCoder, EncodeDecodeByHand) {
  // Proposal [0, 0, 10, 20]: w 10, h 20, centre (5, 10).
  // Ground truth [5, 0, 15, 40]: w 10, h 40, centre (10, 20).
  const pb::BoxCoder coder({10, 10, 5, 5});
  const at::Tensor proposal = t2({{0, 0, 10, 20}});
  const at::Tensor c = coder.encode_single(t2({{5, 0, 15, 40}}), proposal);
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{1, 4}));
  EXPECT_FLOAT_EQ(c[0][0].item<float>(), 10.0f * 5.0f / 10.0f);   // dx
  EXPECT_FLOAT_EQ(c[0][1].item<float>(), 10.0f * 10.0f / 20.0f);  // dy
  EXPECT_FLOAT_EQ(c[0][2].item<float>(), 0.0f);                   // dw = 5 log(1)
  EXPECT_FLOAT_EQ(c[0][3].item<float>(), 5.0f * std::log(2.0f));  // dh = 5 log(2)
  const at::Tensor back = coder.decode_single(c, proposal);
  EXPECT_TRUE(at::allclose(back, t2({{5, 0, 15, 40}}), 0.0, 1e-5)) << back;

  // Zero codes give back the reference box.
  EXPECT_TRUE(same(coder.decode_single(at::zeros({1, 4}), proposal), proposal));
}

TEST(BoxCoder, DecodeClampsLargeScales) {
  // dw = 100 (after the weight) is clamped to log(1000/16): width 10 -> 10 * 62.5 = 625.
  const pb::BoxCoder coder({1, 1, 1, 1});
  const at::Tensor out = coder.decode_single(t2({{0, 0, 100, 0}}), t2({{0, 0, 10, 10}}));
  EXPECT_FLOAT_EQ(out[0][2].sub(out[0][0]).item<float>(), 625.0f);
  EXPECT_FLOAT_EQ(out[0][3].sub(out[0][1]).item<float>(), 10.0f);
  EXPECT_TRUE(std::isfinite(out.sum().item<float>()));
  // A custom clip.
  const pb::BoxCoder tight({1, 1, 1, 1}, std::log(2.0));
  const at::Tensor o2 = tight.decode_single(t2({{0, 0, 5, -1}}), t2({{0, 0, 10, 10}}));
  EXPECT_FLOAT_EQ(o2[0][2].sub(o2[0][0]).item<float>(), 20.0f);
  EXPECT_NEAR(o2[0][3].sub(o2[0][1]).item<float>(), 10.0f / std::exp(1.0f), 1e-5);  // not clamped below
}

TEST(BoxCoder, RoundTripSeveralWeightsAndClasses) {
  for (const std::array<double, 4>& w : std::vector<std::array<double, 4>>{
           {1, 1, 1, 1}, {10, 10, 5, 5}, {20, 20, 10, 10}, {2.5, 3, 0.7, 1.3}}) {
    const pb::BoxCoder coder(w);
    const int64_t n = 50;
    const at::Tensor proposals = random_boxes(n, at::kDouble);
    const at::Tensor gt_a = random_boxes(n, at::kDouble);
    const at::Tensor gt_b = random_boxes(n, at::kDouble);
    // Two "classes": codes laid out [class 0 (4) | class 1 (4)].
    const at::Tensor codes =
        at::cat({coder.encode_single(gt_a, proposals), coder.encode_single(gt_b, proposals)}, 1);
    const at::Tensor dec = coder.decode_single(codes, proposals);  // [N, 8]
    ASSERT_EQ(dec.sizes(), (std::vector<int64_t>{n, 8}));
    EXPECT_LT(max_abs_err(dec.slice(1, 0, 4), gt_a), 1e-9) << w[0];
    EXPECT_LT(max_abs_err(dec.slice(1, 4, 8), gt_b), 1e-9) << w[0];
    // The per-image API: [sum N_i, K, 4].
    const at::Tensor dec3 = coder.decode(codes, {proposals.slice(0, 0, 20), proposals.slice(0, 20)});
    ASSERT_EQ(dec3.sizes(), (std::vector<int64_t>{n, 2, 4}));
    EXPECT_TRUE(same(dec3.reshape({n, 8}), dec));
    const auto enc = coder.encode({gt_a.slice(0, 0, 20), gt_a.slice(0, 20)},
                                  {proposals.slice(0, 0, 20), proposals.slice(0, 20)});
    ASSERT_EQ(enc.size(), 2u);
    EXPECT_EQ(enc[0].size(0), 20);
    EXPECT_EQ(enc[1].size(0), 30);
    EXPECT_TRUE(same(at::cat(enc, 0), codes.slice(1, 0, 4)));
  }
}

TEST(BoxCoder, EmptyInputs) {
  const pb::BoxCoder coder({10, 10, 5, 5});
  EXPECT_EQ(coder.encode_single(at::zeros({0, 4}), at::zeros({0, 4})).sizes(),
            (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(coder.decode_single(at::zeros({0, 8}), at::zeros({0, 4})).sizes(),
            (std::vector<int64_t>{0, 8}));
  // No boxes at all: torchvision leaves the result [0, 4K] rather than [0, K, 4].
  EXPECT_EQ(coder.decode(at::zeros({0, 8}), {at::zeros({0, 4}), at::zeros({0, 4})}).sizes(),
            (std::vector<int64_t>{0, 8}));
  // One empty image among others.
  EXPECT_EQ(coder.decode(at::zeros({3, 8}), {at::zeros({0, 4}), at::zeros({3, 4})}).sizes(),
            (std::vector<int64_t>{3, 2, 4}));
}

TEST(BoxCoder, BadInputs) {
  const pb::BoxCoder coder({10, 10, 5, 5});
  std::string msg = error_of([&] { coder.decode_single(at::zeros({3, 6}), at::zeros({3, 4})); });
  EXPECT_NE(msg.find("rel_codes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 6]"), std::string::npos) << msg;
  msg = error_of([&] { coder.decode_single(at::zeros({1, 4}), at::zeros({3, 4})); });
  EXPECT_NE(msg.find("same number of rows"), std::string::npos) << msg;
  msg = error_of([&] { coder.decode_single(at::zeros({3, 4}), at::zeros({3, 5})); });
  EXPECT_NE(msg.find("[3, 5]"), std::string::npos) << msg;
  msg = error_of([&] { coder.encode_single(at::zeros({3, 4}), at::zeros({2, 4})); });
  EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
  msg = error_of([&] { coder.encode_single(at::zeros({3, 4, 1}), at::zeros({3, 4})); });
  EXPECT_NE(msg.find("[3, 4, 1]"), std::string::npos) << msg;
  msg = error_of([&] { coder.decode(at::zeros({5, 4}), {at::zeros({2, 4})}); });
  EXPECT_NE(msg.find("[5, 4]"), std::string::npos) << msg;
  msg = error_of([] { pb::BoxCoder({1, 0, 1, 1}); });
  EXPECT_NE(msg.find("positive"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------
// AnchorGenerator by hand

TEST(AnchorGenerator, SmallGridByHand) {
  // One 32-pixel square anchor per cell of a 2 x 2 map on a 64 x 64 image: stride 32.
  const pb::AnchorGenerator gen({{32}}, {{1.0}});
  const at::Tensor a = gen({64, 64}, {{2, 2}});
  EXPECT_TRUE(same(a, t2({{-16, -16, 16, 16}, {16, -16, 48, 16}, {-16, 16, 16, 48}, {16, 16, 48, 48}})));

  // Two ratios, non-square grid (H 1, W 2) on a 20 x 50 image: strides (20, 25).
  // Ratio 0.5 (h / w), size 10: w = 10 / sqrt(0.5) = 14.14 -> half 7.07 -> 7; h half 3.54 -> 4.
  const pb::AnchorGenerator gen2({{10}}, {{0.5, 2.0}});
  EXPECT_TRUE(same(gen2.cell_anchors()[0], t2({{-7, -4, 7, 4}, {-4, -7, 4, 7}})));
  EXPECT_TRUE(same(gen2({20, 50}, {{1, 2}}),
                   t2({{-7, -4, 7, 4}, {-4, -7, 4, 7}, {18, -4, 32, 4}, {21, -7, 29, 7}})));
  // Cell anchors round half to even: size 1, ratio 1 -> +-0.5 -> 0.
  EXPECT_TRUE(same(pb::AnchorGenerator({{1, 3}}, {{1.0}}).cell_anchors()[0],
                   t2({{0, 0, 0, 0}, {-2, -2, 2, 2}})));
}

TEST(AnchorGenerator, CountsOrderAndDtype) {
  const pb::AnchorGenerator fpn({{32}, {64}, {128}}, {{0.5, 1, 2}, {0.5, 1, 2}, {0.5, 1, 2}});
  EXPECT_EQ(fpn.num_anchors_per_location(), (std::vector<int64_t>{3, 3, 3}));
  const at::Tensor a = fpn({100, 120}, {{13, 15}, {7, 8}, {4, 4}});
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{(13 * 15 + 7 * 8 + 4 * 4) * 3, 4}));
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  // The first block is map 0, cell (0, 0): its cell anchors unshifted.
  EXPECT_TRUE(same(a.slice(0, 0, 3), fpn.cell_anchors()[0]));
  // Cell (0, 1) of map 0 is shifted by stride_w = 120 / 15 = 8 in x.
  EXPECT_TRUE(same(a.slice(0, 3, 6), fpn.cell_anchors()[0].add(t1({8, 0, 8, 0}))));
  // Map 1 starts after 13 * 15 * 3 rows; its cell (1, 0) is shifted by stride_h = 100 / 7 = 14.
  const int64_t m1 = 13 * 15 * 3;
  EXPECT_TRUE(same(a.slice(0, m1 + 8 * 3, m1 + 9 * 3), fpn.cell_anchors()[1].add(t1({0, 14, 0, 14}))));
  const at::Tensor a64 = fpn({100, 120}, {{13, 15}, {7, 8}, {4, 4}}, at::kDouble);
  EXPECT_EQ(a64.scalar_type(), at::kDouble);
  EXPECT_TRUE(same(a64.to(at::kFloat), a));

  const pb::AnchorGenerator c4({{32, 64, 128, 256, 512}}, {{0.5, 1, 2}});
  EXPECT_EQ(c4.num_anchors_per_location(), (std::vector<int64_t>{15}));
  EXPECT_EQ(c4({100, 120}, {{7, 8}}).size(0), 7 * 8 * 15);
}

TEST(AnchorGenerator, BadInputs) {
  std::string msg = error_of([] { pb::AnchorGenerator({{32}, {64}}, {{1.0}}); });
  EXPECT_NE(msg.find("aspect_ratios"), std::string::npos) << msg;
  msg = error_of([] { pb::AnchorGenerator({{32}}, {{-1.0}}); });
  EXPECT_NE(msg.find("positive"), std::string::npos) << msg;
  const pb::AnchorGenerator gen({{32}, {64}}, {{1.0}, {1.0}});
  msg = error_of([&] { gen({64, 64}, {{8, 8}}); });
  EXPECT_NE(msg.find("2 feature maps"), std::string::npos) << msg;
  msg = error_of([&] { gen({64, 64}, {{8, 8}, {0, 4}}); });
  EXPECT_NE(msg.find("(0, 4)"), std::string::npos) << msg;
  msg = error_of([&] { gen({64, 64}, {{8, 8}, {65, 4}}); });
  EXPECT_NE(msg.find("(65, 4)"), std::string::npos) << msg;
  msg = error_of([&] { gen({64, 64}, {{8, 8}, {4, 4}}, at::kLong); });
  EXPECT_NE(msg.find("floating"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------
// Matcher by hand

TEST(Matcher, ThresholdBoundaries) {
  // One ground truth; qualities at and around the thresholds. Thresholds are compared
  // in float32, so 0.7f counts as >= 0.7 and 0.3f as >= 0.3.
  const at::Tensor q = t1({0.7, 0.69999, 0.3, 0.29999, 0.0, 1.0}).unsqueeze(0);
  const pb::Matcher m(0.7, 0.3, false);
  EXPECT_TRUE(same(m(q), t1i({0, -2, -2, -1, -1, 0})));
  // low == high: nothing is "between".
  EXPECT_TRUE(same(pb::Matcher(0.5, 0.5)(t1({0.5, 0.49, 0.51}).unsqueeze(0)), t1i({0, -1, 0})));
  EXPECT_EQ(pb::Matcher::kBelowLowThreshold, -1);
  EXPECT_EQ(pb::Matcher::kBetweenThresholds, -2);
}

TEST(Matcher, LowQualityMatchesWithTies) {
  const at::Tensor q = t1({0.7, 0.3, 0.2999, 0.5, 0.1, 0.1,    //
                           0.1, 0.69, 0.3, 0.4, 0.4, 0.05,     //
                           0.1, 0.1, 0.1, 0.5, 0.4, 0.05})
                           .reshape({3, 6});
  // Without low-quality matches only column 0 reaches 0.7.
  EXPECT_TRUE(same(pb::Matcher(0.7, 0.3, false)(q), t1i({0, -2, -2, -2, -2, -1})));
  // With them: gt 1's best is column 1 (0.69) -> 1. gt 2's best is column 3 (0.5), where
  // gt 0 ties at 0.5: the column gets its own best gt, the first of the tie, i.e. 0.
  EXPECT_TRUE(same(pb::Matcher(0.7, 0.3, true)(q), t1i({0, 1, -2, 0, -2, -1})));
  // Ties inside one gt row: every column attaining the row's maximum is restored.
  const at::Tensor tie = t1({0.2, 0.4, 0.4, 0.1}).unsqueeze(0);
  EXPECT_TRUE(same(pb::Matcher(0.7, 0.3, true)(tie), t1i({-1, 0, 0, -1})));
}

TEST(Matcher, BadInputs) {
  const pb::Matcher m(0.7, 0.3, true);
  std::string msg = error_of([&] { m(at::zeros({0, 5})); });
  EXPECT_NE(msg.find("no ground-truth boxes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 5]"), std::string::npos) << msg;
  msg = error_of([&] { m(at::zeros({3, 0})); });
  EXPECT_NE(msg.find("no predicted boxes"), std::string::npos) << msg;
  msg = error_of([&] { m(at::zeros({5})); });
  EXPECT_NE(msg.find("[5]"), std::string::npos) << msg;
  msg = error_of([] { pb::Matcher(0.3, 0.7); });
  EXPECT_NE(msg.find("low_threshold"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------
// BalancedPositiveNegativeSampler by hand

// Checks the sampler's contract on one image and returns (#pos, #neg) picked.
std::pair<int64_t, int64_t> check_invariants(const at::Tensor& labels, const at::Tensor& pos,
                                             const at::Tensor& neg, int64_t batch, double frac) {
  EXPECT_EQ(pos.scalar_type(), at::kByte);
  EXPECT_EQ(neg.scalar_type(), at::kByte);
  EXPECT_EQ(pos.sizes(), labels.sizes());
  EXPECT_EQ(neg.sizes(), labels.sizes());
  const at::Tensor p = pos.to(at::kBool);
  const at::Tensor n = neg.to(at::kBool);
  const int64_t np = p.sum().item<int64_t>();
  const int64_t nn = n.sum().item<int64_t>();
  const int64_t avail_pos = labels.ge(1).sum().item<int64_t>();
  const int64_t avail_neg = labels.eq(0).sum().item<int64_t>();
  const int64_t want_pos = std::min(avail_pos, static_cast<int64_t>(batch * frac));
  EXPECT_EQ(np, want_pos);
  EXPECT_EQ(nn, std::min(avail_neg, batch - want_pos));
  // Only positives in pos, only negatives in neg, never both.
  EXPECT_TRUE(labels.masked_select(p).ge(1).all().item<bool>());
  EXPECT_TRUE(labels.masked_select(n).eq(0).all().item<bool>());
  EXPECT_FALSE(p.logical_and(n).any().item<bool>());
  return {np, nn};
}

TEST(Sampler, FewerPositivesThanAskedAreMadeUpWithNegatives) {
  // 3 positives (labels 1, 2, 5), 100 negatives, some ignored (-1, -2).
  std::vector<int64_t> v(120, 0);
  v[5] = 1, v[17] = 2, v[90] = 5;
  for (int i = 100; i < 110; ++i) v[i] = -1;
  for (int i = 110; i < 117; ++i) v[i] = -2;
  const at::Tensor labels = t1i(v);
  at::manual_seed(0);
  const pb::BalancedPositiveNegativeSampler s(10, 0.5);
  const auto [pos, neg] = s({labels});
  ASSERT_EQ(pos.size(), 1u);
  const auto [np, nn] = check_invariants(labels, pos[0], neg[0], 10, 0.5);
  EXPECT_EQ(np, 3);
  EXPECT_EQ(nn, 7);
  // Every positive is taken when there are fewer than asked.
  EXPECT_TRUE(same(pos[0].nonzero().select(1, 0), t1i({5, 17, 90})));
}

TEST(Sampler, FewerNegativesAndEmptyImages) {
  const at::Tensor labels = t1i({1, 1, 1, 1, 1, 1, 0, 0, -1});
  const pb::BalancedPositiveNegativeSampler s(8, 0.25);
  const auto [pos, neg] = s({labels, at::zeros({0}, at::kLong), t1i({-1, -1})});
  ASSERT_EQ(pos.size(), 3u);
  EXPECT_EQ(check_invariants(labels, pos[0], neg[0], 8, 0.25), std::make_pair(int64_t{2}, int64_t{2}));
  EXPECT_EQ(pos[1].numel(), 0);
  EXPECT_EQ(check_invariants(t1i({-1, -1}), pos[2], neg[2], 8, 0.25),
            std::make_pair(int64_t{0}, int64_t{0}));
}

TEST(Sampler, DeterministicUnderAFixedSeed) {
  const at::Tensor labels = at::rand({5000}).mul(3).floor().sub(1).to(at::kLong);  // -1, 0, 1
  const pb::BalancedPositiveNegativeSampler s(256, 0.5);
  at::manual_seed(42);
  const auto a = s({labels, labels});
  at::manual_seed(42);
  const auto b = s({labels, labels});
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(same(a.first[i], b.first[i]));
    EXPECT_TRUE(same(a.second[i], b.second[i]));
    check_invariants(labels, a.first[i], a.second[i], 256, 0.5);
  }
  // The two images draw different permutations from the advancing stream.
  EXPECT_FALSE(at::equal(a.first[0], a.first[1]));
  // An explicit generator gives its own reproducible stream.
  auto g1 = at::detail::createCPUGenerator(7);
  auto g2 = at::detail::createCPUGenerator(7);
  EXPECT_TRUE(same(s({labels}, g1).first[0], s({labels}, g2).first[0]));
}

TEST(Sampler, BadInputs) {
  std::string msg = error_of([] { pb::BalancedPositiveNegativeSampler(-1, 0.5); });
  EXPECT_NE(msg.find("batch_size_per_image"), std::string::npos) << msg;
  msg = error_of([] { pb::BalancedPositiveNegativeSampler(8, 1.5); });
  EXPECT_NE(msg.find("positive_fraction"), std::string::npos) << msg;
  const pb::BalancedPositiveNegativeSampler s(8, 0.5);
  msg = error_of([&] { s({at::zeros({2, 3}, at::kLong)}); });
  EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------
// Against torchvision (fixtures)

TEST(BoxesOracle, BoxOps) {
  double err = 0;
  for (const std::string c : {"f32", "f64", "i64"}) {
    const std::string p = "iou." + c + ".";
    const at::Tensor iou = pb::box_iou(fx(p + "boxes1"), fx(p + "boxes2"));
    EXPECT_TRUE(same(iou, fx(p + "iou"))) << c;
    err = std::max(err, max_abs_err(iou, fx(p + "iou")));
    if (c != "i64") {
      const at::Tensor area = pb::box_area(fx(p + "boxes1"));
      EXPECT_TRUE(same(area, fx("area." + c + ".area"))) << c;
      report("box_area " + c, max_abs_err(area, fx("area." + c + ".area")));
    }
  }
  report("box_iou (f32, f64, i64)", err);

  const at::Tensor size = fx("clip.image_size");
  const std::array<int64_t, 2> hw{size[0].item<int64_t>(), size[1].item<int64_t>()};
  const at::Tensor clipped = pb::clip_boxes_to_image(fx("clip.boxes"), hw);
  EXPECT_TRUE(same(clipped, fx("clip.clipped")));
  const at::Tensor clipped3 = pb::clip_boxes_to_image(fx("clip.boxes").view({5, 8, 4}), hw);
  EXPECT_TRUE(same(clipped3, fx("clip.batched_clipped")));
  report("clip_boxes_to_image", std::max(max_abs_err(clipped, fx("clip.clipped")),
                                         max_abs_err(clipped3, fx("clip.batched_clipped"))));

  const at::Tensor keep = pb::remove_small_boxes(fx("small.boxes"), fx("small.min_size").item<double>());
  EXPECT_TRUE(same(keep, fx("small.keep")));
  report("remove_small_boxes (indices)", max_abs_err(keep, fx("small.keep")));
}

TEST(BoxesOracle, BoxCoder) {
  for (const std::string c : {"rpn", "roi", "odd", "f64"}) {
    const std::string p = "coder." + c + ".";
    const at::Tensor w = fx(p + "weights");
    const pb::BoxCoder coder({w[0].item<double>(), w[1].item<double>(), w[2].item<double>(),
                              w[3].item<double>()},
                             fx(p + "clip").item<double>());
    const at::Tensor proposals = fx(p + "proposals");
    const at::Tensor gt = fx(p + "gt");
    const at::Tensor enc = coder.encode_single(gt, proposals);
    EXPECT_TRUE(same(enc, fx(p + "encoded"))) << c;
    const at::Tensor dec = coder.decode_single(fx(p + "codes"), proposals);
    EXPECT_TRUE(same(dec, fx(p + "decoded"))) << c;
    const at::Tensor dec3 =
        coder.decode(fx(p + "codes"), {proposals.slice(0, 0, 20), proposals.slice(0, 20)});
    EXPECT_TRUE(same(dec3, fx(p + "decoded_batched"))) << c;
    const auto enc_list = coder.encode({gt.slice(0, 0, 20), gt.slice(0, 20)},
                                       {proposals.slice(0, 0, 20), proposals.slice(0, 20)});
    EXPECT_TRUE(same(enc_list[0], fx(p + "encoded_list0"))) << c;
    EXPECT_TRUE(same(enc_list[1], fx(p + "encoded_list1"))) << c;
    // The fixture's last 8 rows push dw/dh past the clip: make sure it was exercised.
    const at::Tensor dw = fx(p + "codes").slice(0, -8, -4).select(1, 2).div(w[2]);
    EXPECT_TRUE(dw.gt(fx(p + "clip")).all().item<bool>()) << c;
    report("BoxCoder " + c + " encode", max_abs_err(enc, fx(p + "encoded")));
    report("BoxCoder " + c + " decode", std::max(max_abs_err(dec, fx(p + "decoded")),
                                                 max_abs_err(dec3, fx(p + "decoded_batched"))));
  }
}

TEST(BoxesOracle, AnchorGenerator) {
  for (const std::string c : {"fpn_ceil", "fpn_floor", "fpn_f64", "c4", "c4_floor", "retina"}) {
    const std::string p = "anchors." + c + ".";
    const int64_t maps = fx(p + "num_maps").item<int64_t>();
    std::vector<std::vector<double>> sizes, ratios;
    for (int64_t i = 0; i < maps; ++i) {
      const at::Tensor s = fx(p + "sizes" + std::to_string(i)).contiguous();
      const at::Tensor r = fx(p + "ratios" + std::to_string(i)).contiguous();
      sizes.emplace_back(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
      ratios.emplace_back(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
    }
    const pb::AnchorGenerator gen(sizes, ratios);
    for (int64_t i = 0; i < maps; ++i) {
      // torchvision casts its stored cell anchors to the dtype of the last forward (float64
      // in the fpn_f64 case); ours stay float32, from which it computed them.
      const at::Tensor want_cell = fx(p + "cell" + std::to_string(i));
      EXPECT_TRUE(same(gen.cell_anchors()[i].to(want_cell.scalar_type()), want_cell)) << c << i;
    }
    const at::Tensor fs = fx(p + "feature_sizes");
    std::vector<std::array<int64_t, 2>> feature_sizes;
    for (int64_t i = 0; i < fs.size(0); ++i) {
      feature_sizes.push_back({fs[i][0].item<int64_t>(), fs[i][1].item<int64_t>()});
    }
    const at::Tensor img = fx(p + "image_size");
    const at::Tensor want = fx(p + "anchors");
    const at::Tensor got = gen({img[0].item<int64_t>(), img[1].item<int64_t>()}, feature_sizes,
                               want.scalar_type());
    EXPECT_TRUE(same(got, want)) << c;
    report("AnchorGenerator " + c, max_abs_err(got, want));
  }
}

TEST(BoxesOracle, Matcher) {
  for (const std::string mname : {"iou", "hand"}) {
    const at::Tensor matrix = fx("matcher." + mname + ".matrix");
    for (const std::string c : {"rpn", "rpn_strict", "roi", "retina"}) {
      const std::string p = "matcher." + mname + "." + c + ".";
      const at::Tensor params = fx(p + "params");
      const pb::Matcher m(params[0].item<double>(), params[1].item<double>(),
                          params[2].item<double>() != 0.0);
      const at::Tensor got = m(matrix);
      EXPECT_TRUE(same(got, fx(p + "matches"))) << mname << " " << c;
      report("Matcher " + mname + " " + c + " (indices)", max_abs_err(got, fx(p + "matches")));
    }
  }
  // The random case does exercise ties and the low-quality rule.
  const at::Tensor strict = fx("matcher.iou.rpn_strict.matches");
  const at::Tensor loose = fx("matcher.iou.rpn.matches");
  EXPECT_GT(loose.ge(0).sum().item<int64_t>(), strict.ge(0).sum().item<int64_t>());
}

TEST(BoxesOracle, Sampler) {
  for (const std::string c : {"rpn", "roi", "few", "empty"}) {
    const std::string p = "sampler." + c + ".";
    const at::Tensor params = fx(p + "params");
    const int64_t batch = params[0].item<int64_t>();
    const double frac = params[1].item<double>();
    std::vector<at::Tensor> labels;
    for (int64_t i = 0; i < fx(p + "num_images").item<int64_t>(); ++i) {
      labels.push_back(fx(p + "labels" + std::to_string(i)));
    }
    // Same seed, same sequence of randperm calls as torchvision, same generator code
    // (LibTorch is the library the Python torch runs on): identical picks.
    at::manual_seed(fx(p + "seed").item<int64_t>());
    const auto [pos, neg] = pb::BalancedPositiveNegativeSampler(batch, frac)(labels);
    ASSERT_EQ(pos.size(), labels.size());
    double err = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      // Invariants first: they hold whatever the random stream.
      const auto counts = check_invariants(labels[i], pos[i], neg[i], batch, frac);
      EXPECT_EQ(counts.first, fx(p + "pos" + std::to_string(i)).sum().item<int64_t>()) << c << i;
      EXPECT_EQ(counts.second, fx(p + "neg" + std::to_string(i)).sum().item<int64_t>()) << c << i;
      // Then bit equality with torchvision's picks.
      EXPECT_TRUE(same(pos[i], fx(p + "pos" + std::to_string(i)))) << c << i;
      EXPECT_TRUE(same(neg[i], fx(p + "neg" + std::to_string(i)))) << c << i;
      err = std::max({err, max_abs_err(pos[i], fx(p + "pos" + std::to_string(i))),
                      max_abs_err(neg[i], fx(p + "neg" + std::to_string(i)))});
    }
    report("Sampler " + c + " (masks)", err);
  }
}

// ---------------------------------------------------------------------------------------
// CUDA: same results on the GPU (within float tolerance; the sampler's CUDA random
// stream differs from the CPU one, so only its invariants are checked).

TEST(BoxesCuda, MatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA, 0);
  const at::Tensor b1 = random_boxes(40), b2 = random_boxes(70);
  const at::Tensor iou = pb::box_iou(b1, b2);
  const at::Tensor iou_gpu = pb::box_iou(b1.to(cuda), b2.to(cuda));
  EXPECT_TRUE(iou_gpu.is_cuda());
  EXPECT_LT(max_abs_err(iou_gpu.cpu(), iou), 1e-6);

  // exp/log may differ by an ulp between CPU and GPU: relative tolerance.
  const pb::BoxCoder coder({10, 10, 5, 5});
  const at::Tensor codes = at::randn({40, 8});
  EXPECT_TRUE(at::allclose(coder.decode_single(codes.to(cuda), b1.to(cuda)).cpu(),
                           coder.decode_single(codes, b1), 1e-5, 1e-4));
  EXPECT_TRUE(at::allclose(coder.encode_single(b2.slice(0, 0, 40).to(cuda), b1.to(cuda)).cpu(),
                           coder.encode_single(b2.slice(0, 0, 40), b1), 1e-5, 1e-5));

  const pb::AnchorGenerator gen({{32}, {64}}, {{0.5, 1, 2}, {0.5, 1, 2}});
  const at::Tensor a_gpu = gen({100, 120}, {{13, 15}, {7, 8}}, at::kFloat, cuda);
  EXPECT_TRUE(a_gpu.is_cuda());
  EXPECT_TRUE(same(a_gpu.cpu(), gen({100, 120}, {{13, 15}, {7, 8}})));

  const pb::Matcher m(0.7, 0.3, true);
  EXPECT_TRUE(same(m(iou.t().contiguous().to(cuda)).cpu(), m(iou.t().contiguous())));

  const at::Tensor labels = at::rand({3000}).mul(3).floor().sub(1).to(at::kLong);
  const auto [pos, neg] = pb::BalancedPositiveNegativeSampler(256, 0.5)({labels.to(cuda)});
  EXPECT_TRUE(pos[0].is_cuda());
  check_invariants(labels, pos[0].cpu(), neg[0].cpu(), 256, 0.5);
}

}  // namespace
