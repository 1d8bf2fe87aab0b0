// CUDA kernels of psearch::deform_conv2d and psearch::_deform_conv2d_backward
// (torchvision.ops.deform_conv2d semantics, v1 and modulated v2).
//
// A deformable convolution is an ordinary convolution over a "column" matrix whose
// entries are sampled at learned positions:
//   columns[c * KH * KW + i * KW + j][(b * OH + oh) * OW + ow]
//     = mask[b, g * KH * KW + k, oh, ow]
//       * bilinear(input[b, c], oh * SH - PH + i * DH + dy, ow * SW - PW + j * DW + dx)
// with k = i * KW + j, g = c / (C / offset_groups) the offset group of channel c, and
// (dy, dx) = offset[b, g * 2 * KH * KW + 2 * k + {0, 1}, oh, ow]. Bilinear sampling
// treats pixels outside the map as zero and returns 0 for points outside
// (-1, H) x (-1, W). The output is then weight (viewed per group as a matrix) times
// columns, done with batched GEMMs (one matrix per group) over chunks of images so
// that the column buffer stays bounded.
//
// Backward, per chunk:
//   grad_columns = weight^T * grad_out                       (GEMM per group)
//   grad_input  += scatter of grad_columns * mask * bilinear weights  (atomics)
//   grad_offset, grad_mask: one thread per (image, offset group, k, oh, ow) sums
//                 over the channels of its group (no atomics needed)
//   grad_weight += grad_out * columns^T                      (GEMM per group)
// and grad_bias = grad_out summed over batch and space.
//
// Per-element arithmetic runs in the accumulation type (float for half); the
// atomically accumulated grad_input and the chunk-summed grad_weight use buffers of
// that type and are converted once at the end.
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>

#include "psearch/ops/cuda/cuda_utils.cuh"

namespace psearch::ops {
namespace {

using cuda::accumulate;
using cuda::blocks_for;
using cuda::kThreads;

// Images processed per GEMM: large enough to give the GEMMs some width, small
// enough that the column buffer (C * KH * KW * images * OH * OW elements, twice
// that in the backward) stays around 256 MiB in float.
constexpr int64_t kMaxImagesPerChunk = 32;
constexpr int64_t kColumnBudget = int64_t{1} << 26;

// Everything the element functions need to turn a flat index into coordinates.
// Passed to kernels by value.
struct Geometry {
  int64_t channels, height, width;  // input planes
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t offset_groups;
  int64_t out_h, out_w;
  int64_t images;  // images in the current chunk

  __host__ __device__ int64_t taps() const { return kernel_h * kernel_w; }
  __host__ __device__ int64_t out_area() const { return out_h * out_w; }
  // Columns of the column matrix: one per output position of every image.
  __host__ __device__ int64_t cols() const { return images * out_h * out_w; }
  __host__ __device__ int64_t channels_per_offset_group() const { return channels / offset_groups; }
};

// Position of the four neighbours of a sample point and its bilinear weights.
// `inside` is false for points outside (-1, H) x (-1, W): they read as zero and
// get no gradient. Individual neighbours may still fall outside the map (the
// point lies within one pixel of the border); `has()` says which ones exist.
template <typename T>
struct Sample {
  bool inside;
  int64_t y0, x0;  // top-left neighbour; the others are +1 in y and/or x
  T ly, lx;        // fractional position inside the pixel cell
  int64_t height, width;

  __host__ __device__ bool has(int64_t y, int64_t x) const {
    return y >= 0 && y < height && x >= 0 && x < width;
  }
};

template <typename T>
__host__ __device__ inline Sample<T> locate(int64_t height, int64_t width, T y, T x) {
  Sample<T> s{};
  s.height = height;
  s.width = width;
  // Negated "inside" test: NaN coordinates count as outside.
  s.inside = y > T(-1) && y < T(height) && x > T(-1) && x < T(width);
  if (!s.inside) return s;
  const T fy = std::floor(y);
  const T fx = std::floor(x);
  s.y0 = static_cast<int64_t>(fy);
  s.x0 = static_cast<int64_t>(fx);
  s.ly = y - fy;
  s.lx = x - fx;
  return s;
}

// Pixel (y, x) of a plane, or zero when it lies outside the map.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline acc_t pixel(const scalar_t* plane, const Sample<acc_t>& s, int64_t y,
                                       int64_t x) {
  return s.has(y, x) ? static_cast<acc_t>(plane[y * s.width + x]) : acc_t(0);
}

// Sampling point of kernel tap (i, j) for output (oh, ow), given its offset.
template <typename acc_t>
__host__ __device__ inline acc_t sample_y(const Geometry& g, int64_t oh, int64_t i, acc_t dy) {
  return static_cast<acc_t>(oh * g.stride_h - g.pad_h + i * g.dilation_h) + dy;
}
template <typename acc_t>
__host__ __device__ inline acc_t sample_x(const Geometry& g, int64_t ow, int64_t j, acc_t dx) {
  return static_cast<acc_t>(ow * g.stride_w - g.pad_w + j * g.dilation_w) + dx;
}

// im2col: element `index` enumerates (c, b, oh, ow) of the chunk (ow fastest); the
// thread fills the KH * KW column rows of channel c at column (b, oh, ow).
// `offset`, `mask` and `input` point at the chunk's first image; `mask` is null
// without modulation.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline void im2col_element(int64_t index, const scalar_t* input,
                                               const scalar_t* offset, const scalar_t* mask,
                                               const Geometry& g, scalar_t* columns) {
  const int64_t ow = index % g.out_w;
  const int64_t oh = (index / g.out_w) % g.out_h;
  const int64_t b = (index / g.out_area()) % g.images;
  const int64_t c = index / g.out_area() / g.images;
  const int64_t group = c / g.channels_per_offset_group();
  const int64_t area = g.out_area();
  const int64_t pos = oh * g.out_w + ow;

  const scalar_t* plane = input + (b * g.channels + c) * g.height * g.width;
  // Offset/mask channel (k-th tap of this offset group) at this output position.
  const scalar_t* off = offset + (b * g.offset_groups + group) * 2 * g.taps() * area + pos;
  const scalar_t* mod =
      mask != nullptr ? mask + (b * g.offset_groups + group) * g.taps() * area + pos : nullptr;
  scalar_t* col = columns + c * g.taps() * g.cols() + b * area + pos;

  for (int64_t i = 0; i < g.kernel_h; ++i) {
    for (int64_t j = 0; j < g.kernel_w; ++j) {
      const int64_t k = i * g.kernel_w + j;
      const acc_t y = sample_y(g, oh, i, static_cast<acc_t>(off[(2 * k) * area]));
      const acc_t x = sample_x(g, ow, j, static_cast<acc_t>(off[(2 * k + 1) * area]));
      const Sample<acc_t> s = locate(g.height, g.width, y, x);
      acc_t value = 0;
      if (s.inside) {
        const acc_t hy = acc_t(1) - s.ly;
        const acc_t hx = acc_t(1) - s.lx;
        value = hy * hx * pixel<scalar_t>(plane, s, s.y0, s.x0) +
                hy * s.lx * pixel<scalar_t>(plane, s, s.y0, s.x0 + 1) +
                s.ly * hx * pixel<scalar_t>(plane, s, s.y0 + 1, s.x0) +
                s.ly * s.lx * pixel<scalar_t>(plane, s, s.y0 + 1, s.x0 + 1);
      }
      if (mod != nullptr) value *= static_cast<acc_t>(mod[k * area]);
      col[k * g.cols()] = static_cast<scalar_t>(value);
    }
  }
}

// col2im: element `index` is one entry of grad_columns ([C * KH * KW, cols], row
// major); the transpose of the forward sampling scatters it, times the mask, onto
// the (up to) four neighbours of its sample point in the accumulation buffer.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline void col2im_element(int64_t index, const scalar_t* grad_columns,
                                               const scalar_t* offset, const scalar_t* mask,
                                               const Geometry& g, acc_t* grad_input) {
  const int64_t column = index % g.cols();
  const int64_t row = index / g.cols();
  const int64_t area = g.out_area();
  const int64_t ow = column % g.out_w;
  const int64_t oh = (column / g.out_w) % g.out_h;
  const int64_t b = column / area;
  const int64_t k = row % g.taps();
  const int64_t c = row / g.taps();
  const int64_t i = k / g.kernel_w;
  const int64_t j = k % g.kernel_w;
  const int64_t group = c / g.channels_per_offset_group();
  const int64_t pos = oh * g.out_w + ow;
  const int64_t og_index = b * g.offset_groups + group;

  acc_t grad = static_cast<acc_t>(grad_columns[index]);
  if (mask != nullptr) grad *= static_cast<acc_t>(mask[(og_index * g.taps() + k) * area + pos]);
  if (grad == acc_t(0)) return;

  const scalar_t* off = offset + og_index * 2 * g.taps() * area + pos;
  const acc_t y = sample_y(g, oh, i, static_cast<acc_t>(off[(2 * k) * area]));
  const acc_t x = sample_x(g, ow, j, static_cast<acc_t>(off[(2 * k + 1) * area]));
  const Sample<acc_t> s = locate(g.height, g.width, y, x);
  if (!s.inside) return;

  acc_t* plane = grad_input + (b * g.channels + c) * g.height * g.width;
  const acc_t hy = acc_t(1) - s.ly;
  const acc_t hx = acc_t(1) - s.lx;
  if (s.has(s.y0, s.x0)) accumulate(plane + s.y0 * g.width + s.x0, grad * hy * hx);
  if (s.has(s.y0, s.x0 + 1)) accumulate(plane + s.y0 * g.width + s.x0 + 1, grad * hy * s.lx);
  if (s.has(s.y0 + 1, s.x0)) accumulate(plane + (s.y0 + 1) * g.width + s.x0, grad * s.ly * hx);
  if (s.has(s.y0 + 1, s.x0 + 1)) {
    accumulate(plane + (s.y0 + 1) * g.width + s.x0 + 1, grad * s.ly * s.lx);
  }
}

// Gradient of one (dy, dx) offset pair and of its mask value: element `index`
// enumerates (b, offset group, k, oh, ow) of the chunk. All channels of the group
// sample at the same point, so the thread locates it once and sums
//   d out / d dy   = sum_c grad_col * mask * d bilinear / d y
//   d out / d mask = sum_c grad_col * bilinear
// over them. Each output element has exactly one writer.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline void offset_mask_grad_element(
    int64_t index, const scalar_t* grad_columns, const scalar_t* input, const scalar_t* offset,
    const scalar_t* mask, const Geometry& g, scalar_t* grad_offset, scalar_t* grad_mask) {
  const int64_t area = g.out_area();
  const int64_t pos = index % area;
  const int64_t ow = pos % g.out_w;
  const int64_t oh = pos / g.out_w;
  const int64_t k = (index / area) % g.taps();
  const int64_t og_index = index / area / g.taps();  // b * offset_groups + group
  const int64_t group = og_index % g.offset_groups;
  const int64_t b = og_index / g.offset_groups;
  const int64_t i = k / g.kernel_w;
  const int64_t j = k % g.kernel_w;

  const int64_t dy_index = (og_index * 2 * g.taps() + 2 * k) * area + pos;
  const int64_t dx_index = dy_index + area;
  const int64_t mask_index = (og_index * g.taps() + k) * area + pos;
  const acc_t y = sample_y(g, oh, i, static_cast<acc_t>(offset[dy_index]));
  const acc_t x = sample_x(g, ow, j, static_cast<acc_t>(offset[dx_index]));
  const Sample<acc_t> s = locate(g.height, g.width, y, x);

  acc_t grad_y = 0, grad_x = 0, grad_m = 0;
  if (s.inside) {
    const acc_t hy = acc_t(1) - s.ly;
    const acc_t hx = acc_t(1) - s.lx;
    const int64_t per_group = g.channels_per_offset_group();
    const int64_t column = b * area + pos;
    for (int64_t c = group * per_group; c < (group + 1) * per_group; ++c) {
      const acc_t gc = static_cast<acc_t>(grad_columns[(c * g.taps() + k) * g.cols() + column]);
      const scalar_t* plane = input + (b * g.channels + c) * g.height * g.width;
      const acc_t v00 = pixel<scalar_t>(plane, s, s.y0, s.x0);
      const acc_t v01 = pixel<scalar_t>(plane, s, s.y0, s.x0 + 1);
      const acc_t v10 = pixel<scalar_t>(plane, s, s.y0 + 1, s.x0);
      const acc_t v11 = pixel<scalar_t>(plane, s, s.y0 + 1, s.x0 + 1);
      // bilinear = hy*hx*v00 + hy*lx*v01 + ly*hx*v10 + ly*lx*v11 with ly = y - floor(y).
      grad_y += gc * (hx * (v10 - v00) + s.lx * (v11 - v01));
      grad_x += gc * (hy * (v01 - v00) + s.ly * (v11 - v10));
      grad_m += gc * (hy * hx * v00 + hy * s.lx * v01 + s.ly * hx * v10 + s.ly * s.lx * v11);
    }
    if (mask != nullptr) {
      const acc_t m = static_cast<acc_t>(mask[mask_index]);
      grad_y *= m;
      grad_x *= m;
    }
  }
  grad_offset[dy_index] = static_cast<scalar_t>(grad_y);
  grad_offset[dx_index] = static_cast<scalar_t>(grad_x);
  if (grad_mask != nullptr) grad_mask[mask_index] = static_cast<scalar_t>(grad_m);
}

template <typename scalar_t, typename acc_t>
__global__ void im2col_kernel(int64_t total, const scalar_t* __restrict__ input,
                              const scalar_t* __restrict__ offset,
                              const scalar_t* __restrict__ mask, Geometry g,
                              scalar_t* __restrict__ columns) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    im2col_element<scalar_t, acc_t>(index, input, offset, mask, g, columns);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void col2im_kernel(int64_t total, const scalar_t* __restrict__ grad_columns,
                              const scalar_t* __restrict__ offset,
                              const scalar_t* __restrict__ mask, Geometry g, acc_t* grad_input) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    col2im_element<scalar_t, acc_t>(index, grad_columns, offset, mask, g, grad_input);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void offset_mask_grad_kernel(int64_t total, const scalar_t* __restrict__ grad_columns,
                                        const scalar_t* __restrict__ input,
                                        const scalar_t* __restrict__ offset,
                                        const scalar_t* __restrict__ mask, Geometry g,
                                        scalar_t* __restrict__ grad_offset,
                                        scalar_t* __restrict__ grad_mask) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    offset_mask_grad_element<scalar_t, acc_t>(index, grad_columns, input, offset, mask, g,
                                              grad_offset, grad_mask);
  }
}

// Validated sizes of one call.
struct Problem {
  Geometry geo;
  int64_t batch, out_channels, groups;
};

Problem check_inputs(const char* op, const at::Tensor& input, const at::Tensor& weight,
                     const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& bias,
                     int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                     int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t offset_groups,
                     bool use_mask) {
  const auto check_tensor = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.is_cuda(), op, " (CUDA): ", name, " must be a CUDA tensor");
    TORCH_CHECK(t.device() == input.device(), op, " (CUDA): ", name,
                " must be on the same device as input (", input.device(), "), got ", t.device());
    TORCH_CHECK(t.scalar_type() == input.scalar_type(), op, " (CUDA): ", name,
                " must have the dtype of input (", input.scalar_type(), "), got ", t.scalar_type());
  };
  TORCH_CHECK(input.is_cuda(), op, " (CUDA): input must be a CUDA tensor");
  check_tensor(weight, "weight");
  check_tensor(offset, "offset");
  check_tensor(bias, "bias");
  if (use_mask) check_tensor(mask, "mask");

  TORCH_CHECK(input.dim() == 4, op, " (CUDA): input must have shape [B, C, H, W], got ",
              input.sizes());
  TORCH_CHECK(weight.dim() == 4, op,
              " (CUDA): weight must have shape [C_out, C_in / groups, KH, KW], got ",
              weight.sizes());
  TORCH_CHECK(offset.dim() == 4, op,
              " (CUDA): offset must have shape [B, 2 * offset_groups * KH * KW, OH, OW], got ",
              offset.sizes());
  TORCH_CHECK(stride_h > 0 && stride_w > 0, op, " (CUDA): stride must be positive, got (", stride_h,
              ", ", stride_w, ")");
  TORCH_CHECK(pad_h >= 0 && pad_w >= 0, op, " (CUDA): padding must be non-negative, got (", pad_h,
              ", ", pad_w, ")");
  TORCH_CHECK(dilation_h > 0 && dilation_w > 0, op, " (CUDA): dilation must be positive, got (",
              dilation_h, ", ", dilation_w, ")");
  TORCH_CHECK(groups > 0 && offset_groups > 0, op,
              " (CUDA): groups and offset_groups must be positive, got ", groups, " and ",
              offset_groups);

  Geometry g{};
  const int64_t batch = input.size(0);
  g.channels = input.size(1);
  g.height = input.size(2);
  g.width = input.size(3);
  const int64_t out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.dilation_h = dilation_h;
  g.dilation_w = dilation_w;
  g.offset_groups = offset_groups;

  TORCH_CHECK(g.kernel_h > 0 && g.kernel_w > 0, op, " (CUDA): kernel size must be positive, got ",
              g.kernel_h, "x", g.kernel_w);
  TORCH_CHECK(weight.size(1) * groups == g.channels, op, " (CUDA): input has ", g.channels,
              " channels but weight expects ", weight.size(1), " per group times ", groups,
              " groups");
  TORCH_CHECK(out_channels % groups == 0, op, " (CUDA): output channels (", out_channels,
              ") must be divisible by groups (", groups, ")");
  TORCH_CHECK(g.channels % offset_groups == 0, op, " (CUDA): input channels (", g.channels,
              ") must be divisible by offset_groups (", offset_groups, ")");

  const int64_t eff_kh = dilation_h * (g.kernel_h - 1) + 1;
  const int64_t eff_kw = dilation_w * (g.kernel_w - 1) + 1;
  g.out_h = (g.height + 2 * pad_h - eff_kh) / stride_h + 1;
  g.out_w = (g.width + 2 * pad_w - eff_kw) / stride_w + 1;
  TORCH_CHECK(g.height + 2 * pad_h >= eff_kh && g.width + 2 * pad_w >= eff_kw, op,
              " (CUDA): padded input (", g.height + 2 * pad_h, "x", g.width + 2 * pad_w,
              ") is smaller than the dilated kernel (", eff_kh, "x", eff_kw, ")");

  TORCH_CHECK(offset.size(0) == batch, op, " (CUDA): offset has batch size ", offset.size(0),
              " but input has ", batch);
  TORCH_CHECK(offset.size(1) == 2 * offset_groups * g.taps(), op,
              " (CUDA): offset must have 2 * offset_groups * KH * KW = ",
              2 * offset_groups * g.taps(), " channels, got ", offset.size(1));
  TORCH_CHECK(offset.size(2) == g.out_h && offset.size(3) == g.out_w, op,
              " (CUDA): offset must have the output's spatial size ", g.out_h, "x", g.out_w,
              ", got ", offset.size(2), "x", offset.size(3));
  if (use_mask) {
    TORCH_CHECK(mask.dim() == 4, op,
                " (CUDA): mask must have shape [B, offset_groups * KH * KW, OH, OW], got ",
                mask.sizes());
    TORCH_CHECK(mask.size(0) == batch, op, " (CUDA): mask has batch size ", mask.size(0),
                " but input has ", batch);
    TORCH_CHECK(mask.size(1) == offset_groups * g.taps(), op,
                " (CUDA): mask must have offset_groups * KH * KW = ", offset_groups * g.taps(),
                " channels, got ", mask.size(1));
    TORCH_CHECK(mask.size(2) == g.out_h && mask.size(3) == g.out_w, op,
                " (CUDA): mask must have the output's spatial size ", g.out_h, "x", g.out_w,
                ", got ", mask.size(2), "x", mask.size(3));
  }
  TORCH_CHECK(bias.numel() == out_channels, op, " (CUDA): bias must have ", out_channels,
              " elements (one per output channel), got ", bias.numel());
  return Problem{g, batch, out_channels, groups};
}

// Images per chunk for a given per-image column size.
int64_t images_per_chunk(const Geometry& g, int64_t batch) {
  const int64_t per_image = std::max<int64_t>(g.channels * g.taps() * g.out_area(), 1);
  return std::max<int64_t>(1, std::min({batch, kMaxImagesPerChunk, kColumnBudget / per_image}));
}

// Fills the column matrix [C * KH * KW, images * OH * OW] of the chunk whose
// first image is `first`.
template <typename scalar_t, typename acc_t>
void launch_im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                   bool use_mask, const Geometry& g, int64_t first, at::Tensor& columns,
                   cudaStream_t stream) {
  const int64_t total = g.channels * g.cols();
  im2col_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
      total, input[first].data_ptr<scalar_t>(), offset[first].data_ptr<scalar_t>(),
      use_mask ? mask[first].data_ptr<scalar_t>() : nullptr, g, columns.data_ptr<scalar_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor deform_conv2d_forward_cuda(const at::Tensor& input, const at::Tensor& weight,
                                      const at::Tensor& offset, const at::Tensor& mask,
                                      const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                      int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                      int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                      bool use_mask) {
  const char* op = "psearch::deform_conv2d";
  Problem p = check_inputs(op, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                           dilation_h, dilation_w, groups, offset_groups, use_mask);
  Geometry& g = p.geo;
  c10::cuda::CUDAGuard device_guard(input.device());

  const at::Tensor bias_view = bias.reshape({1, p.out_channels, 1, 1});
  if (p.batch == 0 || p.out_channels == 0 || input.numel() == 0) {
    // No input channels or an empty map (padding can still give outputs): every
    // sample reads zero and only the bias remains.
    return at::zeros({p.batch, p.out_channels, g.out_h, g.out_w}, input.options()).add_(bias_view);
  }
  // Every element is written chunk by chunk below.
  at::Tensor output = at::empty({p.batch, p.out_channels, g.out_h, g.out_w}, input.options());

  const at::Tensor input_c = input.contiguous();
  const at::Tensor offset_c = offset.contiguous();
  const at::Tensor mask_c = use_mask ? mask.contiguous() : at::Tensor();
  // [groups, C_out / groups, C_in / groups * KH * KW]: row blocks of the weight
  // matrix, each multiplying the column rows of its own input channels.
  const at::Tensor weight_g = weight.contiguous().view({p.groups, p.out_channels / p.groups, -1});
  const int64_t chunk = images_per_chunk(g, p.batch);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "psearch_deform_conv2d_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    for (int64_t first = 0; first < p.batch; first += chunk) {
      g.images = std::min(chunk, p.batch - first);
      at::Tensor columns = at::empty({g.channels * g.taps(), g.cols()}, input.options());
      launch_im2col<scalar_t, acc_t>(input_c, offset_c, mask_c, use_mask, g, first, columns,
                                     stream);
      // [groups, C_out / groups, images * OH * OW] -> [images, C_out, OH * OW]
      const at::Tensor out_g = at::bmm(weight_g, columns.view({p.groups, -1, g.cols()}));
      output.narrow(0, first, g.images)
          .view({g.images, p.out_channels, g.out_area()})
          .copy_(out_g.view({p.out_channels, g.images, g.out_area()}).transpose(0, 1));
    }
  });
  return output.add_(bias_view);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cuda(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& weight,
    const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
    int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
    int64_t groups, int64_t offset_groups, bool use_mask) {
  const char* op = "psearch::_deform_conv2d_backward";
  Problem p = check_inputs(op, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                           dilation_h, dilation_w, groups, offset_groups, use_mask);
  Geometry& g = p.geo;
  TORCH_CHECK(grad.is_cuda() && grad.device() == input.device(), op,
              " (CUDA): grad must be a CUDA tensor on the device of input (", input.device(), ")");
  TORCH_CHECK(grad.scalar_type() == input.scalar_type(), op,
              " (CUDA): grad must have the dtype of input (", input.scalar_type(), "), got ",
              grad.scalar_type());
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == p.batch && grad.size(1) == p.out_channels &&
                  grad.size(2) == g.out_h && grad.size(3) == g.out_w,
              op, " (CUDA): grad must have the output shape [", p.batch, ", ", p.out_channels, ", ",
              g.out_h, ", ", g.out_w, "], got ", grad.sizes());
  c10::cuda::CUDAGuard device_guard(input.device());

  // Without modulation the mask argument is a placeholder; its gradient is zeros
  // of the same (usually empty) shape. With it, grad_mask and grad_offset are
  // filled by a kernel that assumes the contiguous layout, which at::zeros gives
  // (zeros_like would copy the strides of a non-contiguous argument).
  at::Tensor grad_mask = use_mask ? at::zeros(mask.sizes(), mask.options()) : at::zeros_like(mask);
  at::Tensor grad_offset = at::zeros(offset.sizes(), offset.options());
  at::Tensor grad_bias = grad.sum({0, 2, 3}).view_as(bias);
  if (grad.numel() == 0 || input.numel() == 0) {
    return {at::zeros(input.sizes(), input.options()), at::zeros(weight.sizes(), weight.options()),
            grad_offset, grad_mask, grad_bias};
  }

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor input_c = input.contiguous();
  const at::Tensor offset_c = offset.contiguous();
  const at::Tensor mask_c = use_mask ? mask.contiguous() : at::Tensor();
  const at::Tensor weight_g = weight.contiguous().view({p.groups, p.out_channels / p.groups, -1});
  const int64_t chunk = images_per_chunk(g, p.batch);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  at::Tensor grad_input, grad_weight;
  const auto dtype = input.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, dtype, "psearch_deform_conv2d_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    const auto acc_options = input.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    at::Tensor grad_input_acc = at::zeros(input.sizes(), acc_options);
    at::Tensor grad_weight_acc = at::zeros(weight_g.sizes(), acc_options);

    for (int64_t first = 0; first < p.batch; first += chunk) {
      g.images = std::min(chunk, p.batch - first);
      // grad_out of the chunk as [groups, C_out / groups, images * OH * OW], the
      // column layout of the forward GEMM.
      const at::Tensor grad_g = grad_c.narrow(0, first, g.images)
                                    .view({g.images, p.out_channels, g.out_area()})
                                    .transpose(0, 1)
                                    .contiguous()
                                    .view({p.groups, p.out_channels / p.groups, g.cols()});
      // [groups, C_in / groups * KH * KW, cols] == [C_in * KH * KW, cols]
      const at::Tensor grad_columns = at::bmm(weight_g.transpose(1, 2), grad_g);

      const scalar_t* offset_ptr = offset_c[first].data_ptr<scalar_t>();
      const scalar_t* mask_ptr = use_mask ? mask_c[first].data_ptr<scalar_t>() : nullptr;

      const int64_t col_total = grad_columns.numel();
      col2im_kernel<scalar_t, acc_t><<<blocks_for(col_total), kThreads, 0, stream>>>(
          col_total, grad_columns.data_ptr<scalar_t>(), offset_ptr, mask_ptr, g,
          grad_input_acc[first].data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();

      const int64_t off_total = g.images * g.offset_groups * g.taps() * g.out_area();
      offset_mask_grad_kernel<scalar_t, acc_t><<<blocks_for(off_total), kThreads, 0, stream>>>(
          off_total, grad_columns.data_ptr<scalar_t>(), input_c[first].data_ptr<scalar_t>(),
          offset_ptr, mask_ptr, g, grad_offset[first].data_ptr<scalar_t>(),
          use_mask ? grad_mask[first].data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();

      // The forward columns are recomputed rather than kept from the forward pass.
      at::Tensor columns = at::empty({g.channels * g.taps(), g.cols()}, input.options());
      launch_im2col<scalar_t, acc_t>(input_c, offset_c, mask_c, use_mask, g, first, columns,
                                     stream);
      grad_weight_acc.add_(at::bmm(grad_g, columns.view({p.groups, -1, g.cols()}).transpose(1, 2)));
    }
    grad_input = grad_input_acc.to(input.scalar_type());
    grad_weight = grad_weight_acc.to(weight.scalar_type()).view(weight.sizes());
  });
  return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CUDA, m) {
  m.impl("deform_conv2d", &deform_conv2d_forward_cuda);
  m.impl("_deform_conv2d_backward", &deform_conv2d_backward_cuda);
}

}  // namespace psearch::ops
