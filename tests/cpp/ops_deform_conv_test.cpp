// Hand-checkable cases of psearch::ops::deform_conv2d: with zero offsets it is an
// ordinary convolution, an integer offset is a shift of the input, and the mask is a
// per-sample scale.
#include <ATen/core/Tensor.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <string>

#include "psearch/ops/ops.h"

namespace {

at::TensorOptions f64() { return at::TensorOptions().dtype(at::kDouble); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return a.sub(b).abs().max().item<double>();
}

int64_t out_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (n + 2 * p - (d * (k - 1) + 1)) / s + 1;
}

}  // namespace

TEST(DeformConv2d, ZeroOffsetWithoutMaskEqualsConv2d) {
  // Grouped, strided, padded, dilated, non-square kernel: every index path of the
  // kernel must reduce to the regular convolution grid when offsets are zero.
  const int64_t groups = 2, offset_groups = 2, kh = 3, kw = 2;
  const int64_t sh = 2, sw = 1, ph = 1, pw = 2, dh = 1, dw = 2;
  const at::Tensor input = at::randn({2, 4, 9, 8}, f64());
  const at::Tensor weight = at::randn({6, 4 / groups, kh, kw}, f64());
  const at::Tensor bias = at::randn({6}, f64());
  const int64_t ho = out_size(9, kh, sh, ph, dh), wo = out_size(8, kw, sw, pw, dw);
  const at::Tensor offset = at::zeros({2, 2 * offset_groups * kh * kw, ho, wo}, f64());

  const at::Tensor out = psearch::ops::deform_conv2d(input, weight, offset, at::Tensor(), bias,
                                                     sh, sw, ph, pw, dh, dw, groups,
                                                     offset_groups);
  const at::Tensor ref = at::conv2d(input, weight, bias, {sh, sw}, {ph, pw}, {dh, dw}, groups);
  ASSERT_EQ(out.sizes(), ref.sizes());
  EXPECT_LT(max_abs_diff(out, ref), 1e-12);
}

TEST(DeformConv2d, IntegerOffsetEqualsShiftedInput) {
  // Offset (dy, dx) = (0, +1) samples input[y, x + 1], i.e. convolves the input shifted
  // left by one pixel, with a zero column entering on the right. No padding, so the
  // conv2d reference never reads a padded pixel that the deformed grid would read
  // from the image. (+1, 0) is the same along the rows and catches a dy/dx swap.
  const int64_t H = 6, W = 7, kh = 3, kw = 3;
  const at::Tensor input = at::randn({1, 3, H, W}, f64());
  const at::Tensor weight = at::randn({2, 3, kh, kw}, f64());
  const int64_t ho = H - kh + 1, wo = W - kw + 1;

  for (const int axis : {1, 0}) {  // 1: dx = +1, 0: dy = +1
    at::Tensor offset = at::zeros({1, 2 * kh * kw, ho, wo}, f64());
    for (int64_t k = 0; k < kh * kw; ++k) {
      offset.select(1, 2 * k + axis).fill_(1.0);
    }
    const int64_t dim = axis == 1 ? 3 : 2;
    const int64_t n = input.size(dim);
    at::Tensor shifted = at::zeros_like(input);
    shifted.narrow(dim, 0, n - 1).copy_(input.narrow(dim, 1, n - 1));

    const at::Tensor out = psearch::ops::deform_conv2d(input, weight, offset, at::Tensor(),
                                                       at::Tensor(), 1, 1, 0, 0, 1, 1, 1, 1);
    const at::Tensor ref = at::conv2d(shifted, weight);
    EXPECT_LT(max_abs_diff(out, ref), 1e-12) << "shift along axis " << axis;
    // And it is not simply the unshifted convolution.
    EXPECT_GT(max_abs_diff(out, at::conv2d(input, weight)), 1e-3);
  }
}

TEST(DeformConv2d, HalfMaskHalvesOutput) {
  // Modulation scales each sampled value; a constant mask of 0.5 (no bias) therefore
  // halves the output of the unmodulated convolution, whatever the offsets.
  const at::Tensor input = at::randn({2, 4, 6, 6}, f64());
  const at::Tensor weight = at::randn({4, 2, 3, 3}, f64());
  const at::Tensor offset = at::randn({2, 2 * 2 * 9, 6, 6}, f64()).mul(2.0);
  const at::Tensor mask = at::full({2, 2 * 9, 6, 6}, 0.5, f64());

  const at::Tensor plain = psearch::ops::deform_conv2d(input, weight, offset, at::Tensor(),
                                                       at::Tensor(), 1, 1, 1, 1, 1, 1, 2, 2);
  const at::Tensor half = psearch::ops::deform_conv2d(input, weight, offset, mask, at::Tensor(),
                                                      1, 1, 1, 1, 1, 1, 2, 2);
  EXPECT_GT(plain.abs().max().item<double>(), 1e-3);
  EXPECT_LT(max_abs_diff(half, plain.mul(0.5)), 1e-12);
}

TEST(DeformConv2d, SampleOutsideImageIsZero) {
  // A 1x1 kernel whose offset moves every sample far outside the image reads only
  // zero padding: the output is the bias alone.
  const at::Tensor input = at::randn({1, 2, 4, 4}, f64());
  const at::Tensor weight = at::randn({3, 2, 1, 1}, f64());
  const at::Tensor bias = at::randn({3}, f64());
  at::Tensor offset = at::zeros({1, 2, 4, 4}, f64());
  offset.select(1, 0).fill_(-10.0);
  const at::Tensor out = psearch::ops::deform_conv2d(input, weight, offset, at::Tensor(), bias,
                                                     1, 1, 0, 0, 1, 1, 1, 1);
  EXPECT_LT(max_abs_diff(out, bias.view({1, 3, 1, 1}).expand({1, 3, 4, 4})), 1e-15);
}

TEST(DeformConv2d, WrongOffsetChannelsNamesExpectedCount) {
  const at::Tensor input = at::randn({1, 2, 5, 5}, f64());
  const at::Tensor weight = at::randn({2, 2, 3, 3}, f64());
  const at::Tensor offset = at::zeros({1, 10, 3, 3}, f64());  // needs 2 * 1 * 3 * 3 = 18
  try {
    psearch::ops::deform_conv2d(input, weight, offset, at::Tensor(), at::Tensor(), 1, 1, 0, 0,
                                1, 1, 1, 1);
    FAIL() << "expected an error for 10 offset channels";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("= 18 channels, got 10"), std::string::npos)
        << e.what();
  }
}
