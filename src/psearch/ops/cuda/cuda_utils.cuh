#pragma once
// Small helpers shared by the psearch CUDA kernels (header only; the .cu files
// that include it are what CMake compiles).
#include <ATen/cuda/Atomic.cuh>
#include <algorithm>
#include <cstdint>

namespace psearch::ops::cuda {

// Threads per block of the element-wise kernels.
constexpr int kThreads = 256;

// Blocks for `n` elements. The kernels use grid-stride loops, so capping the grid
// is harmless and keeps huge inputs within the launch limits.
inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65536));
}

// Adds `value` to `*address`; atomically on the device, where many threads scatter
// into the same gradient pixel. The host branch only exists so that the per-element
// functions, which are __host__ __device__, can also be instantiated and exercised
// single-threaded on a machine without a GPU.
template <typename T>
__host__ __device__ inline void accumulate(T* address, T value) {
#ifdef __CUDA_ARCH__
  gpuAtomicAdd(address, value);
#else
  *address += value;
#endif
}

}  // namespace psearch::ops::cuda
