// CUDA kernel of psearch::nms (greedy non-maximum suppression, torchvision.ops.nms
// semantics: a box is dropped when its IoU with an already kept, higher-scored box is
// strictly greater than the threshold).
//
// Organisation:
//   1. sort the boxes by decreasing score (stable, so ties keep their input order);
//   2. a kernel fills a bit matrix `mask[i][w]`: bit b of word w is set when box i
//      overlaps box 64*w + b above the threshold (only boxes after i in sorted order,
//      since greedy NMS never lets a lower-scored box suppress a higher one);
//   3. the greedy sweep over that matrix runs on the host: it is inherently
//      sequential, and the number of kept boxes has to reach the host anyway to size
//      the result, so one device-to-host copy of the matrix is the only sync.
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace psearch::ops {
namespace {

// One 64-bit word of the mask covers 64 boxes; one thread block handles one
// (row block, column block) tile of 64 x 64 box pairs.
constexpr int kBoxesPerWord = 64;

// Products and sums of the IoU are rounded one operation at a time (no fused
// multiply-add), so the GPU computes bit for bit what the CPU kernel and the host
// reference compute; otherwise a pair whose IoU sits within an ulp of the
// threshold could be decided differently on the two devices.
__host__ __device__ inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
__host__ __device__ inline double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
__host__ __device__ inline float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
__host__ __device__ inline double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// IoU of two (x1, y1, x2, y2) boxes compared with the threshold. Same formula as
// the CPU kernel and torchvision (no +1 in widths, a real division rather than a
// cross-multiplied comparison): a zero union gives NaN, which compares false and
// suppresses nothing. `threshold` is already in T; see comparable_threshold.
template <typename T>
__host__ __device__ inline bool iou_above(const T* a, const T* b, T threshold) {
  const T left = a[0] > b[0] ? a[0] : b[0];
  const T top = a[1] > b[1] ? a[1] : b[1];
  const T right = a[2] < b[2] ? a[2] : b[2];
  const T bottom = a[3] < b[3] ? a[3] : b[3];
  const T w = right - left > T(0) ? right - left : T(0);
  const T h = bottom - top > T(0) ? bottom - top : T(0);
  const T inter = mul_rn(w, h);
  const T area_a = mul_rn(a[2] - a[0], a[3] - a[1]);
  const T area_b = mul_rn(b[2] - b[0], b[3] - b[1]);
  return inter / (add_rn(area_a, area_b) - inter) > threshold;
}

// The 64-bit mask word of box `row` against the boxes [col_start, col_start + col_count)
// stored contiguously at `col_boxes` (4 values per box). Only boxes with a larger
// sorted index than `row` can be suppressed by it, so earlier ones stay 0 bits.
template <typename T>
__host__ __device__ inline uint64_t overlap_word(const T* row_box, int64_t row, const T* col_boxes,
                                                 int64_t col_start, int col_count, T threshold) {
  uint64_t bits = 0;
  for (int k = 0; k < col_count; ++k) {
    if (col_start + k > row && iou_above(row_box, col_boxes + 4 * k, threshold)) {
      bits |= uint64_t{1} << k;
    }
  }
  return bits;
}

// grid = (column blocks, row blocks), block = 64 threads; thread t owns row box
// 64 * blockIdx.y + t. Boxes are already in sorted order and converted to the
// accumulation type, so shared memory holds exactly what the IoU needs.
template <typename T>
__global__ void nms_mask_kernel(const T* __restrict__ boxes, int64_t n, int64_t col_blocks,
                                T threshold, uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  const int64_t row = row_block * kBoxesPerWord + threadIdx.x;
  // Tiles left of the diagonal only pair a box with higher-scored boxes, which it
  // can never suppress: write zeros and skip the IoU work (the whole block takes
  // this branch, so no thread is left waiting at the barrier below).
  if (col_block < row_block) {
    if (row < n) mask[row * col_blocks + col_block] = 0;
    return;
  }

  __shared__ T col_boxes[kBoxesPerWord * 4];
  const int64_t col_start = col_block * kBoxesPerWord;
  const int col_count =
      static_cast<int>(n - col_start < kBoxesPerWord ? n - col_start : kBoxesPerWord);
  if (threadIdx.x < col_count) {
    for (int c = 0; c < 4; ++c) {
      col_boxes[threadIdx.x * 4 + c] = boxes[(col_start + threadIdx.x) * 4 + c];
    }
  }
  __syncthreads();

  if (row < n) {
    mask[row * col_blocks + col_block] =
        overlap_word(boxes + row * 4, row, col_boxes, col_start, col_count, threshold);
  }
}

// The decision rule is double(iou) > threshold (as in the CPU kernel and torchvision's
// CPU kernel). For a float IoU that is the same as iou > t, where t is the largest
// float not above the threshold: every float above t is above the threshold. Plain
// rounding would be wrong when it rounds up (float(0.1) > 0.1: an IoU of exactly
// float(0.1) must be suppressed), and comparing in double on the device would cost
// a conversion per pair.
template <typename T>
T comparable_threshold(double threshold) {
  T t = static_cast<T>(threshold);
  if (static_cast<double>(t) > threshold) {
    t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  }
  return t;
}

// Greedy sweep in sorted order: a box survives unless a kept box already set its
// bit; when it survives, its row of the mask is OR-ed into the removed set. Only
// the words from the box's own block on matter (earlier boxes are decided).
int64_t greedy_keep(const uint64_t* mask, int64_t n, int64_t col_blocks, int64_t* keep) {
  std::vector<uint64_t> removed(static_cast<size_t>(col_blocks), 0);
  int64_t num_kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t word = i / kBoxesPerWord;
    const uint64_t bit = uint64_t{1} << (i % kBoxesPerWord);
    if (removed[word] & bit) continue;
    keep[num_kept++] = i;
    const uint64_t* row = mask + i * col_blocks;
    for (int64_t w = word; w < col_blocks; ++w) removed[w] |= row[w];
  }
  return num_kept;
}

at::Tensor nms_cuda(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(dets.is_cuda(), "psearch::nms (CUDA): dets must be a CUDA tensor");
  TORCH_CHECK(scores.is_cuda(), "psearch::nms (CUDA): scores must be a CUDA tensor");
  TORCH_CHECK(dets.device() == scores.device(),
              "psearch::nms (CUDA): dets and scores must be on the same device, got ",
              dets.device(), " and ", scores.device());
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4,
              "psearch::nms (CUDA): dets must have shape [N, 4], got ", dets.sizes());
  TORCH_CHECK(scores.dim() == 1, "psearch::nms (CUDA): scores must have shape [N], got ",
              scores.sizes());
  TORCH_CHECK(dets.size(0) == scores.size(0),
              "psearch::nms (CUDA): dets and scores must have the same number of boxes, got ",
              dets.size(0), " boxes and ", scores.size(0), " scores");
  TORCH_CHECK(dets.scalar_type() == scores.scalar_type(),
              "psearch::nms (CUDA): dets and scores must have the same dtype, got ",
              dets.scalar_type(), " and ", scores.scalar_type());

  const int64_t n = dets.size(0);
  if (n == 0) return at::empty({0}, dets.options().dtype(at::kLong));

  c10::cuda::CUDAGuard device_guard(dets.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  // Stable sort: among equal scores the lower input index comes first, which makes
  // the result deterministic and equal to the CPU kernel's.
  const at::Tensor order =
      std::get<1>(at::sort(scores.contiguous(), /*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_dets = dets.index_select(0, order).contiguous();

  const int64_t col_blocks = (n + kBoxesPerWord - 1) / kBoxesPerWord;
  TORCH_CHECK(col_blocks <= 65535, "psearch::nms (CUDA): too many boxes for one launch (", n,
              "); at most ", 65535 * kBoxesPerWord, " are supported");
  at::Tensor mask = at::empty({n * col_blocks}, dets.options().dtype(at::kLong));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, dets.scalar_type(), "psearch_nms_cuda", [&] {
    // Half boxes are widened once here so the kernel's IoU runs in float.
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    const at::Tensor boxes = sorted_dets.to(c10::CppTypeToScalarType<acc_t>::value);
    const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(col_blocks));
    nms_mask_kernel<acc_t><<<grid, kBoxesPerWord, 0, stream>>>(
        boxes.data_ptr<acc_t>(), n, col_blocks, comparable_threshold<acc_t>(iou_threshold),
        reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });

  // .to(kCPU) copies on the current stream and waits for it.
  const at::Tensor mask_cpu = mask.to(at::kCPU);
  at::Tensor keep = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  const int64_t num_kept =
      greedy_keep(reinterpret_cast<const uint64_t*>(mask_cpu.data_ptr<int64_t>()), n, col_blocks,
                  keep.data_ptr<int64_t>());
  return order.index_select(0, keep.narrow(0, 0, num_kept).to(dets.device()));
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CUDA, m) { m.impl("nms", &nms_cuda); }

}  // namespace psearch::ops
