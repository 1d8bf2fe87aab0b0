// The detector's input transform (src/psearch/modeling/input/image_transform.h) against
// torchvision's GeneralizedRCNNTransform: tests/python/fixtures_transform.py stores its inputs
// and outputs in <fixtures>/transform.pt. Also the flip augmentation and bad input.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/input/image_transform.h"
#include "test_util.h"

namespace pm = psearch::modeling;
namespace ck = psearch::checkpoint;

namespace {

const ck::TensorMap& fixture() {
  static const ck::TensorMap map = ck::load_tensors(psearch::test::fixture("transform.pt"));
  return map;
}

at::Tensor get(const std::string& name) {
  const auto it = fixture().find(name);
  if (it == fixture().end()) throw std::runtime_error("transform.pt has no tensor '" + name + "'");
  return it->second;
}

int64_t count(const std::string& prefix) {
  int64_t n = 0;
  while (fixture().count(prefix + std::to_string(n))) ++n;
  return n;
}

std::vector<double> values(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

std::vector<std::array<int64_t, 2>> sizes_of(const at::Tensor& t) {
  std::vector<std::array<int64_t, 2>> out;
  for (int64_t i = 0; i < t.size(0); ++i) out.push_back({t[i][0].item<int64_t>(), t[i][1].item<int64_t>()});
  return out;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

void check_case(const std::string& name) {
  const std::string p = name + ".";
  const pm::ImageTransform transform(pm::ImageTransformOptions()
                                         .min_size(get(p + "min_size").item<int64_t>())
                                         .max_size(get(p + "max_size").item<int64_t>())
                                         .mean(values(get(p + "mean")))
                                         .std(values(get(p + "std")))
                                         .size_divisible(get(p + "size_divisible").item<int64_t>()));
  std::vector<at::Tensor> images, boxes, detections;
  for (int64_t i = 0; i < count(p + "image."); ++i) {
    images.push_back(get(p + "image." + std::to_string(i)));
    boxes.push_back(get(p + "boxes." + std::to_string(i)));
    detections.push_back(get(p + "detections." + std::to_string(i)));
  }
  ASSERT_FALSE(images.empty());
  const pm::TransformedBatch out = transform(images, boxes);

  const at::Tensor expected = get(p + "batch");
  ASSERT_EQ(out.images.sizes(), expected.sizes()) << name;
  EXPECT_EQ(out.images.scalar_type(), expected.scalar_type());
  EXPECT_EQ(out.sizes.batch[0], expected.size(2));
  EXPECT_EQ(out.sizes.batch[1], expected.size(3));
  EXPECT_EQ(out.sizes.images, sizes_of(get(p + "image_sizes"))) << name;
  EXPECT_EQ(out.original_sizes, sizes_of(get(p + "original_sizes"))) << name;
  const double batch_err = max_abs(out.images, expected);
  EXPECT_LE(batch_err, 1e-5) << name;

  double box_err = 0.0, post_err = 0.0;
  ASSERT_EQ(out.boxes.size(), images.size());
  const auto post = transform.postprocess(detections, out.sizes.images, out.original_sizes);
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor rb = get(p + "resized_boxes." + std::to_string(i));
    const at::Tensor pp = get(p + "postprocessed." + std::to_string(i));
    ASSERT_EQ(out.boxes[i].sizes(), rb.sizes());
    ASSERT_EQ(post[i].sizes(), pp.sizes());
    EXPECT_EQ(out.boxes[i].scalar_type(), rb.scalar_type());
    box_err = std::max(box_err, max_abs(out.boxes[i], rb));
    post_err = std::max(post_err, max_abs(post[i], pp));
  }
  EXPECT_EQ(box_err, 0.0) << name;  // the same float32 ratios and products
  EXPECT_EQ(post_err, 0.0) << name;
  std::cout << "[transform parity] " << name << ": padded batch max abs error " << batch_err
            << ", resized boxes " << box_err << ", postprocessed boxes " << post_err << "\n";
}

}  // namespace

TEST(ImageTransform, MatchesTorchvisionSmall) { check_case("small"); }

TEST(ImageTransform, MatchesTorchvisionNaeScale) { check_case("nae"); }

TEST(ImageTransform, ResizeSizeFloorsAndClamps) {
  // Shorter side to min_size...
  EXPECT_EQ(pm::detection_resize_size(90, 130, 120, 200), (std::array<int64_t, 2>{120, 173}));
  // ...unless the longer side would pass max_size.
  EXPECT_EQ(pm::detection_resize_size(150, 70, 120, 200), (std::array<int64_t, 2>{200, 93}));
  // 55 * (120 / 55) is 119.999... in double and floors to 119, as in torchvision.
  EXPECT_EQ(pm::detection_resize_size(61, 55, 120, 200), (std::array<int64_t, 2>{133, 119}));
  // NAE scale on a typical CUHK-SYSU / PRW frame shape.
  EXPECT_EQ(pm::detection_resize_size(600, 800, 900, 1500), (std::array<int64_t, 2>{900, 1200}));
  EXPECT_EQ(pm::detection_resize_size(1080, 1920, 900, 1500), (std::array<int64_t, 2>{843, 1500}));
}

TEST(ImageTransform, BoxesWithoutTargetsAndRoundTrip) {
  const pm::ImageTransform transform(pm::ImageTransformOptions().min_size(64).max_size(100));
  const pm::TransformedBatch out = transform({at::rand({3, 32, 48})});
  EXPECT_TRUE(out.boxes.empty());
  EXPECT_EQ(out.sizes.images[0], (std::array<int64_t, 2>{64, 96}));
  EXPECT_EQ(out.images.sizes(), (at::IntArrayRef{1, 3, 64, 96}));
  // Exact ratios (x2) make the round trip exact.
  const at::Tensor boxes = at::tensor({1.5f, 2.0f, 10.25f, 30.0f}).view({1, 4});
  const at::Tensor up = pm::resize_boxes(boxes, {32, 48}, {64, 96});
  EXPECT_TRUE(at::equal(up, boxes * 2));
  EXPECT_TRUE(at::equal(transform.postprocess({up}, out.sizes.images, out.original_sizes)[0], boxes));
}

TEST(ImageTransform, PaddingIsZero) {
  const pm::ImageTransform transform(pm::ImageTransformOptions().min_size(40).max_size(1000));
  const pm::TransformedBatch out = transform({at::rand({3, 40, 50}), at::rand({3, 50, 40})});
  EXPECT_EQ(out.sizes.batch, (std::array<int64_t, 2>{64, 64}));
  EXPECT_TRUE(out.images[0].narrow(1, 40, 24).eq(0).all().item<bool>());
  EXPECT_TRUE(out.images[1].narrow(2, 40, 24).eq(0).all().item<bool>());
}

TEST(Hflip, ImageAndBoxesByHand) {
  // 1 x 2 x 4 image, columns 0..3: flipped, column c goes to 3 - c.
  const at::Tensor image = at::arange(8, at::kFloat).view({1, 2, 4});
  const at::Tensor boxes = at::tensor({0.0f, 0.0f, 1.0f, 2.0f, 1.5f, 0.5f, 4.0f, 1.0f}).view({2, 4});
  const pm::FlipResult r = pm::hflip(image, boxes);
  EXPECT_TRUE(r.flipped);
  EXPECT_TRUE(at::equal(r.image, at::tensor({3.0f, 2.0f, 1.0f, 0.0f, 7.0f, 6.0f, 5.0f, 4.0f}).view({1, 2, 4})));
  // x1' = W - x2, x2' = W - x1 with W = 4; y unchanged.
  EXPECT_TRUE(at::equal(r.boxes, at::tensor({3.0f, 0.0f, 4.0f, 2.0f, 0.0f, 0.5f, 2.5f, 1.0f}).view({2, 4})));
  // Flipping twice gives the input back.
  const pm::FlipResult back = pm::hflip(r.image, r.boxes);
  EXPECT_TRUE(at::equal(back.image, image));
  EXPECT_TRUE(at::equal(back.boxes, boxes));
  // No boxes is fine.
  EXPECT_EQ(pm::hflip(image, at::zeros({0, 4})).boxes.sizes(), (at::IntArrayRef{0, 4}));
}

TEST(Hflip, RandomIsSeededAndRespectsProbability) {
  const at::Tensor image = at::rand({3, 5, 7});
  const at::Tensor boxes = at::tensor({1.0f, 1.0f, 3.0f, 4.0f}).view({1, 4});
  auto run = [&](uint64_t seed) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<bool> flips;
    for (int i = 0; i < 64; ++i) flips.push_back(pm::random_hflip(image, boxes, 0.5, gen).flipped);
    return flips;
  };
  const auto a = run(3), b = run(3);
  EXPECT_EQ(a, b);  // same seed, same flips
  const auto n = std::count(a.begin(), a.end(), true);
  EXPECT_GT(n, 10);
  EXPECT_LT(n, 54);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_FALSE(pm::random_hflip(image, boxes, 0.0, gen).flipped);
  EXPECT_TRUE(pm::random_hflip(image, boxes, 1.0, gen).flipped);
  const pm::FlipResult kept = pm::random_hflip(image, boxes, 0.0, gen);
  EXPECT_TRUE(at::equal(kept.image, image));
  EXPECT_TRUE(at::equal(kept.boxes, boxes));
}

namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace

TEST(ImageTransform, BadInputGivesClearErrors) {
  const pm::ImageTransform transform;
  EXPECT_NE(error_of([&] { transform({at::rand({4, 10, 10})}); }).find("expected an image [3, H, W], got [4, 10, 10]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { transform({at::rand({10, 10})}); }).find("expected an image [3, H, W], got [10, 10]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { transform({at::rand({1, 3, 10, 10})}); }).find("got [1, 3, 10, 10]"), std::string::npos);
  EXPECT_NE(error_of([&] { transform({at::zeros({3, 10, 10}, at::kByte)}); }).find("floating point"),
            std::string::npos);
  EXPECT_NE(error_of([&] { transform({}); }).find("no images"), std::string::npos);
  EXPECT_NE(error_of([&] { transform({at::rand({3, 10, 10})}, {at::zeros({1, 4}), at::zeros({1, 4})}); })
                .find("1 images but 2 box tensors"),
            std::string::npos);
  EXPECT_NE(error_of([&] { transform({at::rand({3, 10, 10})}, {at::zeros({1, 5})}); }).find("boxes must be [K, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pm::hflip(at::rand({3, 4, 4}), at::zeros({2, 3})); }).find("boxes must be [K, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { pm::ImageTransform(pm::ImageTransformOptions().mean({0.5, 0.5})); })
                .find("one value per channel"),
            std::string::npos);
}
