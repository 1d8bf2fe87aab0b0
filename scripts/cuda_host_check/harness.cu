// Host-only harness for machines without a GPU: the per-element functions of the
// psearch CUDA kernels are __host__ __device__, so this file includes the kernel
// sources and runs those functions sequentially on CPU memory (atomics become plain
// additions, see cuda_utils.cuh). check.py drives it through ctypes and compares the
// results with torchvision's CPU ops. It checks index math and sampling rules, not
// the launch configuration, shared memory or atomics. Built and run by run.sh; not
// part of the CMake build.
#include "psearch/ops/cuda/nms_kernel.cu"
#include "psearch/ops/cuda/roi_align_kernel.cu"
#include "psearch/ops/cuda/deform_conv2d_kernel.cu"

using namespace psearch::ops;

template <typename T>
static int64_t nms_host_impl(const T* boxes, int64_t n, double thr, int64_t* keep) {
  const int64_t col_blocks = (n + 63) / 64;
  // Filled with ones so that a word the tiling forgot to write would show up.
  std::vector<uint64_t> mask(n * col_blocks, ~uint64_t{0});
  for (int64_t rb = 0; rb < col_blocks; ++rb)
    for (int64_t cb = 0; cb < col_blocks; ++cb)
      for (int64_t t = 0; t < 64; ++t) {
        const int64_t row = rb * 64 + t;
        if (row >= n) continue;
        if (cb < rb) { mask[row * col_blocks + cb] = 0; continue; }
        const int64_t col_start = cb * 64;
        const int col_count = (int)std::min<int64_t>(64, n - col_start);
        mask[row * col_blocks + cb] =
            overlap_word(boxes + row * 4, row, boxes + col_start * 4, col_start, col_count,
                         comparable_threshold<T>(thr));
      }
  return greedy_keep(mask.data(), n, col_blocks, keep);
}

static Geometry make_geo(const int64_t* p) {
  Geometry g{};
  g.channels = p[0]; g.height = p[1]; g.width = p[2]; g.kernel_h = p[3]; g.kernel_w = p[4];
  g.stride_h = p[5]; g.stride_w = p[6]; g.pad_h = p[7]; g.pad_w = p[8];
  g.dilation_h = p[9]; g.dilation_w = p[10]; g.offset_groups = p[11];
  g.out_h = p[12]; g.out_w = p[13]; g.images = p[14];
  return g;
}

#define DEFINE_FOR(T)                                                                          \
  extern "C" int64_t nms_host_##T(const T* boxes, int64_t n, double thr, int64_t* keep) {     \
    return nms_host_impl<T>(boxes, n, thr, keep);                                              \
  }                                                                                            \
  extern "C" void roi_fwd_##T(const T* input, const T* rois, double scale, int64_t B,          \
                              int64_t C, int64_t H, int64_t W, int64_t K, int64_t PH,          \
                              int64_t PW, int64_t sr, bool aligned, T* out) {                  \
    for (int64_t i = 0; i < K * C * PH * PW; ++i)                                              \
      out[i] = roi_align_forward_element<T, T>(i, input, rois, (T)scale, B, C, H, W, PH, PW,   \
                                               sr, aligned);                                   \
  }                                                                                            \
  extern "C" void roi_bwd_##T(const T* grad, const T* rois, double scale, int64_t B,           \
                              int64_t C, int64_t H, int64_t W, int64_t K, int64_t PH,          \
                              int64_t PW, int64_t sr, bool aligned, T* gin) {                  \
    for (int64_t i = 0; i < K * C * PH * PW; ++i)                                              \
      roi_align_backward_element<T, T>(i, grad, rois, (T)scale, B, C, H, W, PH, PW, sr,        \
                                       aligned, gin);                                          \
  }                                                                                            \
  extern "C" void im2col_##T(const T* input, const T* offset, const T* mask,                   \
                             const int64_t* p, T* columns) {                                   \
    Geometry g = make_geo(p);                                                                  \
    for (int64_t i = 0; i < g.channels * g.cols(); ++i)                                        \
      im2col_element<T, T>(i, input, offset, mask, g, columns);                                \
  }                                                                                            \
  extern "C" void col2im_##T(const T* gcol, const T* offset, const T* mask, const int64_t* p,  \
                             T* gin) {                                                         \
    Geometry g = make_geo(p);                                                                  \
    for (int64_t i = 0; i < g.channels * g.taps() * g.cols(); ++i)                             \
      col2im_element<T, T>(i, gcol, offset, mask, g, gin);                                     \
  }                                                                                            \
  extern "C" void offgrad_##T(const T* gcol, const T* input, const T* offset, const T* mask,   \
                              const int64_t* p, T* goff, T* gmask) {                           \
    Geometry g = make_geo(p);                                                                  \
    for (int64_t i = 0; i < g.images * g.offset_groups * g.taps() * g.out_area(); ++i)         \
      offset_mask_grad_element<T, T>(i, gcol, input, offset, mask, g, goff, gmask);            \
  }

DEFINE_FOR(float)
DEFINE_FOR(double)
