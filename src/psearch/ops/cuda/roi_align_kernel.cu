// CUDA kernels of psearch::roi_align and psearch::_roi_align_backward
// (torchvision.ops.roi_align semantics).
//
// Forward: one thread per output element (roi, channel, ph, pw) averages the
// bilinearly interpolated input over a grid of sample points inside its bin.
// Backward: one thread per element of the incoming gradient scatters it back onto
// the four input pixels of every sample point; bins of different RoIs (and
// neighbouring bins of one RoI) share pixels, hence atomicAdd.
//
// All arithmetic runs in the accumulation type (float for half, otherwise the input
// type); the backward accumulates its atomics in a buffer of that type too and
// converts once at the end, so half gradients do not lose the many small additions.
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>

#include "psearch/ops/cuda/cuda_utils.cuh"

namespace psearch::ops {
namespace {

using cuda::accumulate;
using cuda::blocks_for;
using cuda::kThreads;

// The four input pixels and weights of one bilinear sample. `valid` is false for
// points farther than one pixel outside the map, which contribute nothing.
template <typename T>
struct BilinearTap {
  bool valid;
  int64_t y_low, y_high, x_low, x_high;
  // Weights of (y_low, x_low), (y_low, x_high), (y_high, x_low), (y_high, x_high).
  T w_ll, w_lh, w_hl, w_hh;
};

// RoIAlign's sampling rule: points in [-1, 0] are clamped onto the first row/column
// and points in [size - 1, size] onto the last one (so the two taps coincide there
// with weights summing to one), anything beyond is zero.
template <typename T>
__host__ __device__ inline BilinearTap<T> bilinear_tap(int64_t height, int64_t width, T y, T x) {
  BilinearTap<T> tap{};
  // Written as a negated "inside" test so that NaN coordinates also sample nothing.
  if (!(y >= T(-1) && y <= T(height) && x >= T(-1) && x <= T(width))) {
    tap.valid = false;
    return tap;
  }
  tap.valid = true;
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  tap.y_low = static_cast<int64_t>(y);
  tap.x_low = static_cast<int64_t>(x);
  if (tap.y_low >= height - 1) {
    tap.y_low = tap.y_high = height - 1;
    y = T(tap.y_low);
  } else {
    tap.y_high = tap.y_low + 1;
  }
  if (tap.x_low >= width - 1) {
    tap.x_low = tap.x_high = width - 1;
    x = T(tap.x_low);
  } else {
    tap.x_high = tap.x_low + 1;
  }
  const T ly = y - T(tap.y_low);
  const T lx = x - T(tap.x_low);
  const T hy = T(1) - ly;
  const T hx = T(1) - lx;
  tap.w_ll = hy * hx;
  tap.w_lh = hy * lx;
  tap.w_hl = ly * hx;
  tap.w_hh = ly * lx;
  return tap;
}

// Geometry of one RoI bin: where its first sample lies, the spacing of samples and
// how many there are. Shared by forward and backward so both see the same points.
template <typename T>
struct BinGrid {
  int64_t batch;
  T top, left;         // corner of the bin
  T bin_h, bin_w;      // size of the bin
  int grid_h, grid_w;  // samples per bin along y and x
  T count;             // divisor of the average

  // Sample iy lies at the centre of the iy-th of grid_h equal slices of the bin.
  // Written in the same operation order as the CPU kernel so both round alike.
  __host__ __device__ T sample_y(int iy) const {
    return top + (static_cast<T>(iy) + T(0.5)) * bin_h / static_cast<T>(grid_h);
  }
  __host__ __device__ T sample_x(int ix) const {
    return left + (static_cast<T>(ix) + T(0.5)) * bin_w / static_cast<T>(grid_w);
  }
};

// Samples along one axis of a bin: the fixed ratio, or adaptively about one per
// input pixel the bin covers. A non-positive or non-finite bin size (inverted
// aligned box, NaN or infinite coordinates) gets none rather than an undefined
// float-to-int conversion.
template <typename T>
__host__ __device__ inline int samples_per_bin(T bin_size, int64_t sampling_ratio) {
  if (sampling_ratio > 0) return static_cast<int>(sampling_ratio);
  const T n = std::ceil(bin_size);
  return n > T(0) && n < T(2147483647) ? static_cast<int>(n) : 0;
}

template <typename T, typename RoiT>
__host__ __device__ inline BinGrid<T> bin_grid(const RoiT* roi, T spatial_scale,
                                               int64_t pooled_height, int64_t pooled_width,
                                               int64_t ph, int64_t pw, int64_t sampling_ratio,
                                               bool aligned) {
  BinGrid<T> g;
  g.batch = static_cast<int64_t>(static_cast<T>(roi[0]));
  // aligned: pixel centres sit at integer + 0.5, so shift the scaled box by half
  // a pixel; otherwise keep the legacy behaviour and force boxes to at least 1x1.
  const T shift = aligned ? T(0.5) : T(0);
  const T start_x = static_cast<T>(roi[1]) * spatial_scale - shift;
  const T start_y = static_cast<T>(roi[2]) * spatial_scale - shift;
  const T end_x = static_cast<T>(roi[3]) * spatial_scale - shift;
  const T end_y = static_cast<T>(roi[4]) * spatial_scale - shift;
  T roi_w = end_x - start_x;
  T roi_h = end_y - start_y;
  if (!aligned) {
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(pooled_height);
  g.bin_w = roi_w / static_cast<T>(pooled_width);
  g.grid_h = samples_per_bin(g.bin_h, sampling_ratio);
  g.grid_w = samples_per_bin(g.bin_w, sampling_ratio);
  // A degenerate aligned box (x2 < x1) has no samples and a zero output; the max
  // keeps the divisor away from zero.
  const int count = g.grid_h * g.grid_w;
  g.count = static_cast<T>(count > 1 ? count : 1);
  g.top = start_y + static_cast<T>(ph) * g.bin_h;
  g.left = start_x + static_cast<T>(pw) * g.bin_w;
  return g;
}

// Output element `index` of a contiguous [K, C, PH, PW] result.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline acc_t roi_align_forward_element(
    int64_t index, const scalar_t* input, const scalar_t* rois, acc_t spatial_scale,
    int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
  const int64_t pw = index % pooled_width;
  const int64_t ph = (index / pooled_width) % pooled_height;
  const int64_t c = (index / pooled_width / pooled_height) % channels;
  const int64_t n = index / pooled_width / pooled_height / channels;

  const BinGrid<acc_t> g = bin_grid<acc_t>(rois + n * 5, spatial_scale, pooled_height, pooled_width,
                                           ph, pw, sampling_ratio, aligned);
  // An RoI naming a batch entry that does not exist samples nothing (instead of
  // reading out of bounds).
  if (g.batch < 0 || g.batch >= batch_size) return acc_t(0);
  const scalar_t* plane = input + (g.batch * channels + c) * height * width;
  acc_t sum = 0;
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const acc_t y = g.sample_y(iy);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const acc_t x = g.sample_x(ix);
      const BilinearTap<acc_t> t = bilinear_tap<acc_t>(height, width, y, x);
      if (!t.valid) continue;
      sum += t.w_ll * static_cast<acc_t>(plane[t.y_low * width + t.x_low]) +
             t.w_lh * static_cast<acc_t>(plane[t.y_low * width + t.x_high]) +
             t.w_hl * static_cast<acc_t>(plane[t.y_high * width + t.x_low]) +
             t.w_hh * static_cast<acc_t>(plane[t.y_high * width + t.x_high]);
    }
  }
  return sum / g.count;
}

// Scatters grad element `index` (of a contiguous [K, C, PH, PW] gradient) into the
// [B, C, H, W] accumulation buffer `grad_input`.
template <typename scalar_t, typename acc_t>
__host__ __device__ inline void roi_align_backward_element(
    int64_t index, const scalar_t* grad, const scalar_t* rois, acc_t spatial_scale,
    int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio, bool aligned, acc_t* grad_input) {
  const int64_t pw = index % pooled_width;
  const int64_t ph = (index / pooled_width) % pooled_height;
  const int64_t c = (index / pooled_width / pooled_height) % channels;
  const int64_t n = index / pooled_width / pooled_height / channels;

  const BinGrid<acc_t> g = bin_grid<acc_t>(rois + n * 5, spatial_scale, pooled_height, pooled_width,
                                           ph, pw, sampling_ratio, aligned);
  const acc_t share = static_cast<acc_t>(grad[index]) / g.count;
  // Nothing to scatter (saves the atomics), or an RoI whose batch entry does not
  // exist, which received no input in the forward either.
  if (share == acc_t(0) || g.batch < 0 || g.batch >= batch_size) return;
  acc_t* plane = grad_input + (g.batch * channels + c) * height * width;
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const acc_t y = g.sample_y(iy);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const acc_t x = g.sample_x(ix);
      const BilinearTap<acc_t> t = bilinear_tap<acc_t>(height, width, y, x);
      if (!t.valid) continue;
      accumulate(plane + t.y_low * width + t.x_low, share * t.w_ll);
      accumulate(plane + t.y_low * width + t.x_high, share * t.w_lh);
      accumulate(plane + t.y_high * width + t.x_low, share * t.w_hl);
      accumulate(plane + t.y_high * width + t.x_high, share * t.w_hh);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_align_forward_kernel(int64_t total, const scalar_t* __restrict__ input,
                                         const scalar_t* __restrict__ rois, acc_t spatial_scale,
                                         int64_t batch_size, int64_t channels, int64_t height,
                                         int64_t width, int64_t pooled_height, int64_t pooled_width,
                                         int64_t sampling_ratio, bool aligned,
                                         scalar_t* __restrict__ output) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    output[index] = static_cast<scalar_t>(roi_align_forward_element<scalar_t, acc_t>(
        index, input, rois, spatial_scale, batch_size, channels, height, width, pooled_height,
        pooled_width, sampling_ratio, aligned));
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_align_backward_kernel(int64_t total, const scalar_t* __restrict__ grad,
                                          const scalar_t* __restrict__ rois, acc_t spatial_scale,
                                          int64_t batch_size, int64_t channels, int64_t height,
                                          int64_t width, int64_t pooled_height,
                                          int64_t pooled_width, int64_t sampling_ratio,
                                          bool aligned, acc_t* grad_input) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    roi_align_backward_element<scalar_t, acc_t>(index, grad, rois, spatial_scale, batch_size,
                                                channels, height, width, pooled_height,
                                                pooled_width, sampling_ratio, aligned, grad_input);
  }
}

void check_rois(const at::Tensor& rois, const at::Tensor& other, const char* other_name,
                const char* op) {
  TORCH_CHECK(rois.is_cuda(), op, " (CUDA): rois must be a CUDA tensor");
  TORCH_CHECK(rois.device() == other.device(), op, " (CUDA): rois and ", other_name,
              " must be on the same device, got ", rois.device(), " and ", other.device());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              " (CUDA): rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got ",
              rois.sizes());
  TORCH_CHECK(rois.scalar_type() == other.scalar_type(), op, " (CUDA): rois and ", other_name,
              " must have the same dtype, got ", rois.scalar_type(), " and ", other.scalar_type());
}

at::Tensor roi_align_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                  double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                                  int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(input.is_cuda(), "psearch::roi_align (CUDA): input must be a CUDA tensor");
  TORCH_CHECK(input.dim() == 4,
              "psearch::roi_align (CUDA): input must have shape [B, C, H, W], got ", input.sizes());
  check_rois(rois, input, "input", "psearch::roi_align");
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0,
              "psearch::roi_align (CUDA): pooled size must be positive, got ", pooled_height, "x",
              pooled_width);

  c10::cuda::CUDAGuard device_guard(input.device());
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1);
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  // No RoIs, no channels or an empty map: nothing to sample, the result is zeros.
  if (num_rois * channels == 0 || input.numel() == 0) {
    return at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
  }
  // Every element is written by the kernel.
  at::Tensor output = at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());

  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const int64_t total = output.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(), "psearch_roi_align_forward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    roi_align_forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input_c.data_ptr<scalar_t>(), rois_c.data_ptr<scalar_t>(),
        static_cast<acc_t>(spatial_scale), input.size(0), channels, height, width, pooled_height,
        pooled_width, sampling_ratio, aligned, output.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                   double spatial_scale, int64_t pooled_height,
                                   int64_t pooled_width, int64_t batch_size, int64_t channels,
                                   int64_t height, int64_t width, int64_t sampling_ratio,
                                   bool aligned) {
  TORCH_CHECK(grad.is_cuda(), "psearch::_roi_align_backward (CUDA): grad must be a CUDA tensor");
  check_rois(rois, grad, "grad", "psearch::_roi_align_backward");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(2) == pooled_height &&
                  grad.size(3) == pooled_width,
              "psearch::_roi_align_backward (CUDA): grad must have shape [K, C, ", pooled_height,
              ", ", pooled_width, "] with K = ", rois.size(0), " RoIs, got ", grad.sizes());
  TORCH_CHECK(grad.size(1) == channels, "psearch::_roi_align_backward (CUDA): grad has ",
              grad.size(1), " channels but the input had ", channels);
  TORCH_CHECK(batch_size >= 0 && channels >= 0 && height >= 0 && width >= 0,
              "psearch::_roi_align_backward (CUDA): negative input size");

  c10::cuda::CUDAGuard device_guard(grad.device());
  if (grad.numel() == 0 || batch_size * channels * height * width == 0) {
    return at::zeros({batch_size, channels, height, width}, grad.options());
  }

  // Autograd often hands over expanded (stride-0) or transposed gradients.
  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const int64_t total = grad_c.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, grad.scalar_type(), "psearch_roi_align_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    at::Tensor buffer = at::zeros({batch_size, channels, height, width},
                                  grad.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    roi_align_backward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, grad_c.data_ptr<scalar_t>(), rois_c.data_ptr<scalar_t>(),
        static_cast<acc_t>(spatial_scale), batch_size, channels, height, width, pooled_height,
        pooled_width, sampling_ratio, aligned, buffer.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    grad_input = buffer.to(grad.scalar_type());
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CUDA, m) {
  m.impl("roi_align", &roi_align_forward_cuda);
  m.impl("_roi_align_backward", &roi_align_backward_cuda);
}

}  // namespace psearch::ops
