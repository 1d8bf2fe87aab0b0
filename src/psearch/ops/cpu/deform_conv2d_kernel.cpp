// CPU kernels of psearch::deform_conv2d and psearch::_deform_conv2d_backward.
//
// Deformable convolution (DCN v1; v2 "modulated" when use_mask) samples the input at
// per-output-location offsets from the regular convolution grid:
//
//   out[b, o, oy, ox] = bias[o] + sum_{c in group(o), ki, kj}
//       weight[o, c, ki, kj] * mask[b, og(c), k, oy, ox] * bilinear(input[b, c], y, x)
//   y = oy * stride_h - pad_h + ki * dilation_h + offset[b, og(c)*2K + 2k,     oy, ox]
//   x = ox * stride_w - pad_w + kj * dilation_w + offset[b, og(c)*2K + 2k + 1, oy, ox]
//
// with k = ki * kw + kj, K = kh * kw and og(c) the offset group of input channel c.
// bilinear() is 0 for points outside (-1, H) x (-1, W); inside, corner pixels that lie
// outside the image contribute 0 (zero padding).
//
// Implementation strategy: the sum over (c, ki, kj) is a matrix product once the
// sampled values are laid out as "deformable columns"
//   columns[c * K + k, b * HWout + p]   (p = oy * Wout + ox),
// so each weight group is one GEMM over a chunk of images. The bilinear sampling itself
// only depends on (image, offset group, kernel position, output position), not on the
// channel, so a "sampling plan" (four corner indices and four weights per point) is
// computed once and reused for every channel of the offset group. Images are processed
// in chunks so the column buffer stays bounded.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

namespace psearch::ops {
namespace {

// Upper bound on the elements of one column buffer (Cin*K x chunk*HWout). 2^25 elements
// is 128 MiB in float32: large enough that the GEMMs are efficient, small enough that a
// big batch does not materialize a multi-GiB buffer. A chunk holds at least one image.
constexpr int64_t kMaxColumnElements = int64_t{1} << 25;

// All sizes derived from the arguments, validated once and shared by both kernels.
struct Geometry {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t groups, offset_groups;
  bool use_mask;
  bool has_bias;

  int64_t K() const { return kernel_h * kernel_w; }
  int64_t out_hw() const { return out_h * out_w; }
  int64_t in_hw() const { return height * width; }
  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
  int64_t in_per_offset_group() const { return in_channels / offset_groups; }
};

Geometry check_and_describe(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& offset, const at::Tensor& mask,
                            const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                            int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                            int64_t dilation_w, int64_t groups, int64_t offset_groups,
                            bool use_mask) {
  TORCH_CHECK(input.defined() && weight.defined() && offset.defined(),
              "deform_conv2d: input, weight and offset must be defined tensors");
  TORCH_CHECK(input.dim() == 4, "deform_conv2d: input must be 4-D [B, Cin, H, W], got ",
              input.sizes());
  TORCH_CHECK(weight.dim() == 4,
              "deform_conv2d: weight must be 4-D [Cout, Cin / groups, kh, kw], got ",
              weight.sizes());
  TORCH_CHECK(offset.dim() == 4,
              "deform_conv2d: offset must be 4-D [B, 2 * offset_groups * kh * kw, Hout, Wout], got ",
              offset.sizes());
  TORCH_CHECK(input.device().is_cpu() && weight.device().is_cpu() && offset.device().is_cpu(),
              "deform_conv2d (CPU kernel): all tensors must be on the CPU");
  TORCH_CHECK(at::isFloatingType(input.scalar_type()),
              "deform_conv2d: input must be a floating point tensor, got ", input.scalar_type());
  TORCH_CHECK(weight.scalar_type() == input.scalar_type() &&
                  offset.scalar_type() == input.scalar_type(),
              "deform_conv2d: input, weight and offset must have the same dtype, got ",
              input.scalar_type(), ", ", weight.scalar_type(), " and ", offset.scalar_type());
  TORCH_CHECK(stride_h > 0 && stride_w > 0, "deform_conv2d: stride must be positive, got (",
              stride_h, ", ", stride_w, ")");
  TORCH_CHECK(pad_h >= 0 && pad_w >= 0, "deform_conv2d: padding must be non-negative, got (",
              pad_h, ", ", pad_w, ")");
  TORCH_CHECK(dilation_h > 0 && dilation_w > 0,
              "deform_conv2d: dilation must be positive, got (", dilation_h, ", ", dilation_w,
              ")");
  TORCH_CHECK(groups > 0, "deform_conv2d: groups must be positive, got ", groups);
  TORCH_CHECK(offset_groups > 0, "deform_conv2d: offset_groups must be positive, got ",
              offset_groups);

  Geometry g{};
  g.batch = input.size(0);
  g.in_channels = input.size(1);
  g.height = input.size(2);
  g.width = input.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.dilation_h = dilation_h;
  g.dilation_w = dilation_w;
  g.groups = groups;
  g.offset_groups = offset_groups;
  g.use_mask = use_mask;

  TORCH_CHECK(g.kernel_h > 0 && g.kernel_w > 0,
              "deform_conv2d: kernel size must be positive, got weight of shape ", weight.sizes());
  TORCH_CHECK(g.in_channels % groups == 0, "deform_conv2d: input channels (", g.in_channels,
              ") must be divisible by groups (", groups, ")");
  TORCH_CHECK(g.out_channels % groups == 0, "deform_conv2d: output channels (",
              g.out_channels, ") must be divisible by groups (", groups, ")");
  TORCH_CHECK(g.in_channels % offset_groups == 0, "deform_conv2d: input channels (",
              g.in_channels, ") must be divisible by offset_groups (", offset_groups, ")");
  TORCH_CHECK(weight.size(1) * groups == g.in_channels, "deform_conv2d: weight.size(1) (",
              weight.size(1), ") times groups (", groups, ") must equal input channels (",
              g.in_channels, ")");
  // Corner indices inside one channel plane are stored as int32.
  TORCH_CHECK(g.height * g.width <= std::numeric_limits<int32_t>::max(),
              "deform_conv2d: input plane of ", g.height, "x", g.width, " is too large");

  const int64_t eff_kh = dilation_h * (g.kernel_h - 1) + 1;
  const int64_t eff_kw = dilation_w * (g.kernel_w - 1) + 1;
  g.out_h = (g.height + 2 * pad_h - eff_kh) / stride_h + 1;
  g.out_w = (g.width + 2 * pad_w - eff_kw) / stride_w + 1;
  TORCH_CHECK(g.height + 2 * pad_h >= eff_kh && g.width + 2 * pad_w >= eff_kw &&
                  g.out_h > 0 && g.out_w > 0,
              "deform_conv2d: the dilated kernel (", eff_kh, "x", eff_kw,
              ") is larger than the padded input (", g.height + 2 * pad_h, "x",
              g.width + 2 * pad_w, "); the output would be empty");

  const int64_t expected_offset_channels = 2 * offset_groups * g.K();
  TORCH_CHECK(offset.size(0) == g.batch, "deform_conv2d: offset batch size (", offset.size(0),
              ") must equal input batch size (", g.batch, ")");
  TORCH_CHECK(offset.size(1) == expected_offset_channels,
              "deform_conv2d: offset must have 2 * offset_groups * kh * kw = 2 * ", offset_groups,
              " * ", g.kernel_h, " * ", g.kernel_w, " = ", expected_offset_channels,
              " channels, got ", offset.size(1));
  TORCH_CHECK(offset.size(2) == g.out_h && offset.size(3) == g.out_w,
              "deform_conv2d: offset spatial size (", offset.size(2), "x", offset.size(3),
              ") must equal the output size (", g.out_h, "x", g.out_w, ")");

  if (use_mask) {
    TORCH_CHECK(mask.defined() && mask.dim() == 4,
                "deform_conv2d: with use_mask, mask must be 4-D [B, offset_groups * kh * kw, "
                "Hout, Wout]");
    TORCH_CHECK(mask.device().is_cpu(), "deform_conv2d (CPU kernel): mask must be on the CPU");
    TORCH_CHECK(mask.scalar_type() == input.scalar_type(), "deform_conv2d: mask dtype (",
                mask.scalar_type(), ") must equal input dtype (", input.scalar_type(), ")");
    TORCH_CHECK(mask.size(0) == g.batch, "deform_conv2d: mask batch size (", mask.size(0),
                ") must equal input batch size (", g.batch, ")");
    TORCH_CHECK(mask.size(1) == offset_groups * g.K(),
                "deform_conv2d: mask must have offset_groups * kh * kw = ",
                offset_groups * g.K(), " channels, got ", mask.size(1));
    TORCH_CHECK(mask.size(2) == g.out_h && mask.size(3) == g.out_w,
                "deform_conv2d: mask spatial size (", mask.size(2), "x", mask.size(3),
                ") must equal the output size (", g.out_h, "x", g.out_w, ")");
  }

  // The schema's bias is not optional; an undefined or empty tensor means "no bias".
  g.has_bias = bias.defined() && bias.numel() > 0;
  if (g.has_bias) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == g.out_channels,
                "deform_conv2d: bias must be 1-D with ", g.out_channels,
                " elements (output channels), got ", bias.sizes());
    TORCH_CHECK(bias.device().is_cpu(), "deform_conv2d (CPU kernel): bias must be on the CPU");
    TORCH_CHECK(bias.scalar_type() == input.scalar_type(), "deform_conv2d: bias dtype (",
                bias.scalar_type(), ") must equal input dtype (", input.scalar_type(), ")");
  }
  return g;
}

// Number of images per chunk so that the column buffer stays under kMaxColumnElements.
int64_t images_per_chunk(const Geometry& g) {
  const int64_t per_image = std::max<int64_t>(1, g.in_channels * g.K() * g.out_hw());
  return std::clamp<int64_t>(kMaxColumnElements / per_image, 1, std::max<int64_t>(1, g.batch));
}

// Where one sampling point lands: its four corner pixels (row-major in the channel
// plane: (h0,w0), (h0,w0+1), (h0+1,w0), (h0+1,w0+1)), their validity and the fractional
// position. `inside` is false for points outside (-1, H) x (-1, W), whose value is 0.
template <typename T>
struct Corners {
  bool inside;
  bool valid[4];
  int32_t idx[4];
  T lh, lw;  // y - floor(y), x - floor(x)
};

template <typename T>
inline Corners<T> locate(T y, T x, int64_t H, int64_t W) {
  Corners<T> c;
  // Written as a positive test so NaN coordinates also count as outside.
  c.inside = y > T(-1) && y < T(H) && x > T(-1) && x < T(W);
  if (!c.inside) {
    return c;
  }
  const int64_t h0 = static_cast<int64_t>(std::floor(y));
  const int64_t w0 = static_cast<int64_t>(std::floor(x));
  c.lh = y - static_cast<T>(h0);
  c.lw = x - static_cast<T>(w0);
  const bool row0 = h0 >= 0, row1 = h0 + 1 < H;
  const bool col0 = w0 >= 0, col1 = w0 + 1 < W;
  c.valid[0] = row0 && col0;
  c.valid[1] = row0 && col1;
  c.valid[2] = row1 && col0;
  c.valid[3] = row1 && col1;
  // An inside point always has a valid corner (h0 in [-1, H-1] so row0 or row1 holds;
  // same for columns). Invalid corners are pointed at that valid pixel with weight 0,
  // so the inner loops read memory unconditionally and never out of bounds, and touch
  // only pixels the reference would also touch.
  int32_t fallback = 0;
  for (int n = 3; n >= 0; --n) {
    if (c.valid[n]) {
      fallback = static_cast<int32_t>((h0 + (n >> 1)) * W + (w0 + (n & 1)));
    }
  }
  for (int n = 0; n < 4; ++n) {
    c.idx[n] = c.valid[n] ? static_cast<int32_t>((h0 + (n >> 1)) * W + (w0 + (n & 1)))
                          : fallback;
  }
  return c;
}

// One entry of the sampling plan: four corner indices and their (mask-scaled) bilinear
// weights. idx[0] < 0 marks a point outside the image (contributes nothing).
template <typename T>
struct Sample {
  int32_t idx[4];
  T w[4];
};

// Computes the sampling plan for images [b0, b0 + nb):
//   plan[((b * OG + og) * K + k) * HWout + p]   (b relative to b0).
template <typename T>
void build_plan(const Geometry& g, const T* offset, const T* mask, int64_t b0, int64_t nb,
                std::vector<Sample<T>>& plan) {
  const int64_t K = g.K(), OG = g.offset_groups, HWo = g.out_hw();
  plan.resize(static_cast<size_t>(nb * OG * K * HWo));
  const int64_t rows = nb * OG * K;
  const int64_t grain = std::max<int64_t>(1, 4096 / HWo);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t k = r % K;
      const int64_t bog = r / K;  // b * OG + og, b relative to the chunk
      const int64_t ki = k / g.kernel_w, kj = k % g.kernel_w;
      const int64_t abs_bog = b0 * OG + bog;
      // dy plane is channel og*2K + 2k, dx plane the next one.
      const T* dy = offset + (abs_bog * 2 * K + 2 * k) * HWo;
      const T* dx = dy + HWo;
      const T* m = mask != nullptr ? mask + (abs_bog * K + k) * HWo : nullptr;
      Sample<T>* out = plan.data() + r * HWo;
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        const T base_y = static_cast<T>(oy * g.stride_h - g.pad_h + ki * g.dilation_h);
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          const int64_t p = oy * g.out_w + ox;
          const T base_x = static_cast<T>(ox * g.stride_w - g.pad_w + kj * g.dilation_w);
          const Corners<T> c = locate<T>(base_y + dy[p], base_x + dx[p], g.height, g.width);
          Sample<T>& s = out[p];
          if (!c.inside) {
            s.idx[0] = -1;
            s.idx[1] = s.idx[2] = s.idx[3] = 0;
            s.w[0] = s.w[1] = s.w[2] = s.w[3] = T(0);
            continue;
          }
          const T scale = m != nullptr ? m[p] : T(1);
          const T hh = T(1) - c.lh, hw = T(1) - c.lw;
          const T w[4] = {hh * hw, hh * c.lw, c.lh * hw, c.lh * c.lw};
          for (int n = 0; n < 4; ++n) {
            s.idx[n] = c.idx[n];
            s.w[n] = c.valid[n] ? w[n] * scale : T(0);
          }
        }
      }
    }
  });
}

// Fills columns[c * K + k, b * HWout + p] (columns is [Cin * K, nb * HWout]) from the plan.
template <typename T>
void fill_columns(const Geometry& g, const T* input, int64_t b0, int64_t nb,
                  const std::vector<Sample<T>>& plan, T* columns) {
  const int64_t K = g.K(), OG = g.offset_groups, HWo = g.out_hw(), HWi = g.in_hw();
  const int64_t N = nb * HWo;
  const int64_t cpog = g.in_per_offset_group();
  const int64_t rows = g.in_channels * K * nb;  // (c, k, b) in memory order of columns
  const int64_t grain = std::max<int64_t>(1, 4096 / HWo);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r % nb;
      const int64_t ck = r / nb;
      const int64_t k = ck % K, c = ck / K;
      const int64_t og = c / cpog;
      const T* src = input + ((b0 + b) * g.in_channels + c) * HWi;
      const Sample<T>* s = plan.data() + ((b * OG + og) * K + k) * HWo;
      T* dst = columns + ck * N + b * HWo;
      for (int64_t p = 0; p < HWo; ++p) {
        const Sample<T>& sp = s[p];
        dst[p] = sp.idx[0] < 0 ? T(0)
                               : sp.w[0] * src[sp.idx[0]] + sp.w[1] * src[sp.idx[1]] +
                                     sp.w[2] * src[sp.idx[2]] + sp.w[3] * src[sp.idx[3]];
      }
    }
  });
}

// grad_input += columns^T-scatter: every sampled value distributed its gradient back to
// its four corners with the same weights used in the forward. One task per (image,
// channel) plane so no two tasks write the same memory.
template <typename T>
void scatter_grad_input(const Geometry& g, const T* grad_columns, int64_t b0, int64_t nb,
                        const std::vector<Sample<T>>& plan, T* grad_input) {
  const int64_t K = g.K(), OG = g.offset_groups, HWo = g.out_hw(), HWi = g.in_hw();
  const int64_t N = nb * HWo;
  const int64_t cpog = g.in_per_offset_group();
  const int64_t grain = std::max<int64_t>(1, 4096 / (HWo * K));
  at::parallel_for(0, nb * g.in_channels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t bc = begin; bc < end; ++bc) {
      const int64_t b = bc / g.in_channels, c = bc % g.in_channels;
      const int64_t og = c / cpog;
      T* gin = grad_input + ((b0 + b) * g.in_channels + c) * HWi;
      for (int64_t k = 0; k < K; ++k) {
        const T* gcol = grad_columns + (c * K + k) * N + b * HWo;
        const Sample<T>* s = plan.data() + ((b * OG + og) * K + k) * HWo;
        for (int64_t p = 0; p < HWo; ++p) {
          const Sample<T>& sp = s[p];
          if (sp.idx[0] < 0) {
            continue;
          }
          const T gv = gcol[p];
          // Invalid corners carry weight 0 and alias a valid pixel: adding 0 is harmless.
          gin[sp.idx[0]] += sp.w[0] * gv;
          gin[sp.idx[1]] += sp.w[1] * gv;
          gin[sp.idx[2]] += sp.w[2] * gv;
          gin[sp.idx[3]] += sp.w[3] * gv;
        }
      }
    }
  });
}

// Gradients w.r.t. offset and mask for images [b0, b0 + nb). With v = bilinear value
// (unmodulated), column = mask * v, so
//   d/d mask   = sum_c gcol * v
//   d/d dy     = mask * sum_c gcol * dv/dy,   dv/dy = hw*(v10 - v00) + lw*(v11 - v01)
//   d/d dx     = mask * sum_c gcol * dv/dx,   dv/dx = hh*(v01 - v00) + lh*(v11 - v10)
// (derivatives of the floor-based bilinear formula, as the reference uses; 0 outside).
// One task per (image, offset group, kernel position): each writes its own output rows
// and accumulates over the channels of its offset group.
template <typename T>
void offset_mask_grad(const Geometry& g, const T* input, const T* offset, const T* mask,
                      const T* grad_columns, int64_t b0, int64_t nb, T* grad_offset,
                      T* grad_mask) {
  const int64_t K = g.K(), OG = g.offset_groups, HWo = g.out_hw(), HWi = g.in_hw();
  const int64_t N = nb * HWo;
  const int64_t cpog = g.in_per_offset_group();
  const int64_t rows = nb * OG * K;
  // Each row costs ~HWo * channels-per-group corner reads; tiny problems (gradcheck)
  // stay on one thread instead of paying for a parallel region per call.
  const int64_t grain = std::max<int64_t>(1, 16384 / (HWo * cpog));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    struct Point {
      int32_t idx[4];
      T a[4];   // bilinear weights (validity applied)
      T by[4];  // d weight / d y
      T bx[4];  // d weight / d x
    };
    std::vector<Point> pts(static_cast<size_t>(HWo));
    std::vector<uint8_t> inside(static_cast<size_t>(HWo));
    std::vector<T> acc_m(static_cast<size_t>(HWo)), acc_y(static_cast<size_t>(HWo)),
        acc_x(static_cast<size_t>(HWo));
    for (int64_t r = begin; r < end; ++r) {
      const int64_t k = r % K;
      const int64_t bog = r / K;
      const int64_t b = bog / OG, og = bog % OG;
      const int64_t ki = k / g.kernel_w, kj = k % g.kernel_w;
      const int64_t abs_bog = b0 * OG + bog;
      const T* dy = offset + (abs_bog * 2 * K + 2 * k) * HWo;
      const T* dx = dy + HWo;
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        const T base_y = static_cast<T>(oy * g.stride_h - g.pad_h + ki * g.dilation_h);
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          const int64_t p = oy * g.out_w + ox;
          const T base_x = static_cast<T>(ox * g.stride_w - g.pad_w + kj * g.dilation_w);
          const Corners<T> c = locate<T>(base_y + dy[p], base_x + dx[p], g.height, g.width);
          inside[p] = c.inside;
          if (!c.inside) {
            continue;
          }
          const T lh = c.lh, lw = c.lw, hh = T(1) - lh, hw = T(1) - lw;
          const T a[4] = {hh * hw, hh * lw, lh * hw, lh * lw};
          const T by[4] = {-hw, -lw, hw, lw};
          const T bx[4] = {-hh, hh, -lh, lh};
          Point& pt = pts[p];
          for (int n = 0; n < 4; ++n) {
            pt.idx[n] = c.idx[n];
            pt.a[n] = c.valid[n] ? a[n] : T(0);
            pt.by[n] = c.valid[n] ? by[n] : T(0);
            pt.bx[n] = c.valid[n] ? bx[n] : T(0);
          }
        }
      }
      std::fill(acc_m.begin(), acc_m.end(), T(0));
      std::fill(acc_y.begin(), acc_y.end(), T(0));
      std::fill(acc_x.begin(), acc_x.end(), T(0));
      for (int64_t c = og * cpog; c < (og + 1) * cpog; ++c) {
        const T* src = input + ((b0 + b) * g.in_channels + c) * HWi;
        const T* gcol = grad_columns + (c * K + k) * N + b * HWo;
        for (int64_t p = 0; p < HWo; ++p) {
          if (!inside[p]) {
            continue;
          }
          const Point& pt = pts[p];
          const T v0 = src[pt.idx[0]], v1 = src[pt.idx[1]], v2 = src[pt.idx[2]],
                  v3 = src[pt.idx[3]];
          const T gv = gcol[p];
          acc_m[p] += gv * (pt.a[0] * v0 + pt.a[1] * v1 + pt.a[2] * v2 + pt.a[3] * v3);
          acc_y[p] += gv * (pt.by[0] * v0 + pt.by[1] * v1 + pt.by[2] * v2 + pt.by[3] * v3);
          acc_x[p] += gv * (pt.bx[0] * v0 + pt.bx[1] * v1 + pt.bx[2] * v2 + pt.bx[3] * v3);
        }
      }
      const T* m = mask != nullptr ? mask + (abs_bog * K + k) * HWo : nullptr;
      T* gdy = grad_offset + (abs_bog * 2 * K + 2 * k) * HWo;
      T* gdx = gdy + HWo;
      for (int64_t p = 0; p < HWo; ++p) {
        const T scale = m != nullptr ? m[p] : T(1);
        gdy[p] = scale * acc_y[p];
        gdx[p] = scale * acc_x[p];
      }
      if (grad_mask != nullptr) {
        std::copy(acc_m.begin(), acc_m.end(), grad_mask + (abs_bog * K + k) * HWo);
      }
    }
  });
}

// columns [Cin*K, N] viewed per group as [G, Cin/G*K, N]; weight as [G, Cout/G, Cin/G*K].
at::Tensor weight_by_group(const at::Tensor& weight, const Geometry& g) {
  return weight.reshape({g.groups, g.out_per_group(), g.in_per_group() * g.K()});
}

at::Tensor deform_conv2d_forward_cpu(const at::Tensor& input_, const at::Tensor& weight_,
                                     const at::Tensor& offset_, const at::Tensor& mask_,
                                     const at::Tensor& bias_, int64_t stride_h, int64_t stride_w,
                                     int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                     int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                     bool use_mask) {
  const Geometry g = check_and_describe(input_, weight_, offset_, mask_, bias_, stride_h,
                                        stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                                        offset_groups, use_mask);
  // The kernels index raw memory in NCHW order.
  const at::Tensor input = input_.contiguous();
  const at::Tensor weight = weight_.contiguous();
  const at::Tensor offset = offset_.contiguous();
  const at::Tensor mask = use_mask ? mask_.contiguous() : at::Tensor();

  at::Tensor output =
      at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.options());
  if (g.batch == 0) {
    return output;
  }
  const int64_t K = g.K(), HWo = g.out_hw();
  const int64_t chunk = images_per_chunk(g);
  const at::Tensor w_grouped = weight_by_group(weight, g);

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "psearch_deform_conv2d_cpu", [&] {
    std::vector<Sample<scalar_t>> plan;
    at::Tensor columns;
    for (int64_t b0 = 0; b0 < g.batch; b0 += chunk) {
      const int64_t nb = std::min(chunk, g.batch - b0);
      build_plan<scalar_t>(g, offset.data_ptr<scalar_t>(),
                           use_mask ? mask.data_ptr<scalar_t>() : nullptr, b0, nb, plan);
      if (!columns.defined() || columns.size(1) != nb * HWo) {
        columns = at::empty({g.in_channels * K, nb * HWo}, input.options());
      }
      fill_columns<scalar_t>(g, input.data_ptr<scalar_t>(), b0, nb, plan,
                             columns.data_ptr<scalar_t>());
      // [G, Cout/G, Cin/G*K] x [G, Cin/G*K, nb*HWo] -> [Cout, nb, HWo] -> output rows.
      const at::Tensor prod =
          at::bmm(w_grouped, columns.view({g.groups, g.in_per_group() * K, nb * HWo}));
      output.narrow(0, b0, nb)
          .view({nb, g.out_channels, HWo})
          .copy_(prod.view({g.out_channels, nb, HWo}).transpose(0, 1));
    }
  });
  if (g.has_bias) {
    output.add_(bias_.contiguous().view({1, g.out_channels, 1, 1}));
  }
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
deform_conv2d_backward_cpu(const at::Tensor& grad_, const at::Tensor& input_,
                           const at::Tensor& weight_, const at::Tensor& offset_,
                           const at::Tensor& mask_, const at::Tensor& bias_, int64_t stride_h,
                           int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                           int64_t dilation_w, int64_t groups, int64_t offset_groups,
                           bool use_mask) {
  const Geometry g = check_and_describe(input_, weight_, offset_, mask_, bias_, stride_h,
                                        stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                                        offset_groups, use_mask);
  TORCH_CHECK(grad_.defined() && grad_.dim() == 4 && grad_.size(0) == g.batch &&
                  grad_.size(1) == g.out_channels && grad_.size(2) == g.out_h &&
                  grad_.size(3) == g.out_w,
              "_deform_conv2d_backward: grad must have the output shape [", g.batch, ", ",
              g.out_channels, ", ", g.out_h, ", ", g.out_w, "], got ",
              grad_.defined() ? grad_.sizes() : at::IntArrayRef{});
  TORCH_CHECK(grad_.scalar_type() == input_.scalar_type(), "_deform_conv2d_backward: grad dtype (",
              grad_.scalar_type(), ") must equal input dtype (", input_.scalar_type(), ")");

  const at::Tensor grad = grad_.contiguous();
  const at::Tensor input = input_.contiguous();
  const at::Tensor weight = weight_.contiguous();
  const at::Tensor offset = offset_.contiguous();
  const at::Tensor mask = use_mask ? mask_.contiguous() : at::Tensor();

  at::Tensor grad_input = at::zeros_like(input, at::MemoryFormat::Contiguous);
  at::Tensor grad_weight = at::zeros_like(weight, at::MemoryFormat::Contiguous);
  at::Tensor grad_offset = at::zeros_like(offset, at::MemoryFormat::Contiguous);
  // Without a mask the argument is a placeholder; its "gradient" has its (empty) shape.
  at::Tensor grad_mask = mask_.defined() ? at::zeros_like(mask_, at::MemoryFormat::Contiguous)
                                         : at::zeros({0}, input.options());
  at::Tensor grad_bias;
  if (g.has_bias) {
    grad_bias = grad.sum({0, 2, 3});
  } else {
    grad_bias = bias_.defined() ? at::zeros_like(bias_) : at::zeros({0}, input.options());
  }
  if (g.batch == 0) {
    return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};
  }

  const int64_t K = g.K(), HWo = g.out_hw();
  const int64_t G = g.groups, cig_k = g.in_per_group() * K, cog = g.out_per_group();
  const int64_t chunk = images_per_chunk(g);
  const at::Tensor w_grouped = weight_by_group(weight, g);          // [G, Cout/G, Cin/G*K]
  const at::Tensor w_grouped_t = w_grouped.transpose(1, 2);         // [G, Cin/G*K, Cout/G]
  at::Tensor grad_w_grouped = grad_weight.view({G, cog, cig_k});    // accumulated per chunk

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "psearch_deform_conv2d_backward_cpu", [&] {
    std::vector<Sample<scalar_t>> plan;
    at::Tensor columns;
    for (int64_t b0 = 0; b0 < g.batch; b0 += chunk) {
      const int64_t nb = std::min(chunk, g.batch - b0);
      const int64_t N = nb * HWo;
      // grad of the chunk laid out like the GEMM result: [Cout, nb*HWo] = [G, Cout/G, N].
      const at::Tensor grad_cols_out = grad.narrow(0, b0, nb)
                                           .view({nb, g.out_channels, HWo})
                                           .transpose(0, 1)
                                           .reshape({G, cog, N});
      // Weight gradient needs the (modulated) columns of the forward pass.
      build_plan<scalar_t>(g, offset.data_ptr<scalar_t>(),
                           use_mask ? mask.data_ptr<scalar_t>() : nullptr, b0, nb, plan);
      if (!columns.defined() || columns.size(1) != N) {
        columns = at::empty({g.in_channels * K, N}, input.options());
      }
      fill_columns<scalar_t>(g, input.data_ptr<scalar_t>(), b0, nb, plan,
                             columns.data_ptr<scalar_t>());
      grad_w_grouped.baddbmm_(grad_cols_out, columns.view({G, cig_k, N}).transpose(1, 2));

      // Gradient w.r.t. the columns: [G, Cin/G*K, Cout/G] x [G, Cout/G, N] = [Cin*K, N].
      const at::Tensor grad_columns = at::bmm(w_grouped_t, grad_cols_out).contiguous();
      const scalar_t* gcol = grad_columns.data_ptr<scalar_t>();
      scatter_grad_input<scalar_t>(g, gcol, b0, nb, plan, grad_input.data_ptr<scalar_t>());
      offset_mask_grad<scalar_t>(g, input.data_ptr<scalar_t>(), offset.data_ptr<scalar_t>(),
                                 use_mask ? mask.data_ptr<scalar_t>() : nullptr, gcol, b0, nb,
                                 grad_offset.data_ptr<scalar_t>(),
                                 use_mask ? grad_mask.data_ptr<scalar_t>() : nullptr);
    }
  });
  return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CPU, m) {
  m.impl("deform_conv2d", TORCH_FN(deform_conv2d_forward_cpu));
  m.impl("_deform_conv2d_backward", TORCH_FN(deform_conv2d_backward_cpu));
}

}  // namespace psearch::ops
