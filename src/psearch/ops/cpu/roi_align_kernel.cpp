// CPU kernels of psearch::roi_align and psearch::_roi_align_backward.
//
// RoIAlign semantics (Mask R-CNN, as in torchvision.ops.roi_align):
//  * a RoI (batch, x1, y1, x2, y2) is scaled by spatial_scale into feature-map
//    coordinates; with `aligned` it is also shifted by -0.5 so that pixel centres sit at
//    integer + 0.5 (detectron2's pixel model); without it, RoIs smaller than one cell are
//    grown to one cell (legacy Caffe2 behaviour);
//  * the RoI is cut into pooled_height x pooled_width bins; each bin averages a regular
//    grid_h x grid_w set of bilinear samples placed at the centres of a sub-grid, where
//    grid = sampling_ratio, or ceil(roi_size / pooled_size) when sampling_ratio <= 0;
//  * a sample farther than one cell outside the map (coordinate < -1 or > size)
//    contributes 0; a sample within that margin is clamped onto the border.
//
// Implementation: a bilinear weight is the product of a weight along y and one along x,
// and a sample outside the map is zero along either axis, so each bin is
//   value = sum_r wy[r] * sum_c wx[c] * input[r, c]
// over the distinct rows r and columns c its samples touch. The per-axis taps (line,
// weight) of every bin are computed once per RoI; samples sharing a row or column are
// merged, which removes most of the 4 * grid_h * grid_w terms of a direct evaluation.
// The sum is evaluated separably: a bin row is first interpolated along y over all
// columns of the RoI (contiguous, vectorized), then each bin picks its x taps.
// Work is split over blocks of channels: each thread reads or writes its own planes, so
// the backward pass needs no atomics (see for_each_roi_and_channel_block).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace psearch::ops {
namespace {

/// Output grid and sampling parameters shared by the forward and backward kernels.
struct PoolParams {
  double spatial_scale;
  int64_t pooled_height;
  int64_t pooled_width;
  int64_t sampling_ratio;
  bool aligned;
};

/// Feature-map extent the RoIs are pooled from.
struct MapShape {
  int64_t batch;
  int64_t channels;
  int64_t height;
  int64_t width;
};

/// Taps of the bins of one RoI axis while they are collected: bin b uses entries
/// [start[b], start[b + 1]). `line` is the row offset (row * width) for the y axis and
/// the column for x. Samples of a bin that share a line are merged into one tap.
template <typename T>
struct RunBuilder {
  std::vector<int64_t> start{0};
  std::vector<int64_t> line;
  std::vector<T> weight;

  void clear() {
    start.assign(1, 0);
    line.clear();
    weight.clear();
  }

  /// Adds `w` to `l` within the open run, appending `l` if the run does not have it yet.
  /// Runs stay sorted; samples usually move forward, so the scan stops within two steps.
  void add(int64_t l, T w) {
    const auto run_begin = line.begin() + start.back();
    auto it = line.end();
    while (it != run_begin && *(it - 1) > l) --it;
    if (it != run_begin && *(it - 1) == l) {
      weight[(it - 1) - line.begin()] += w;
      return;
    }
    const auto pos = it - line.begin();
    line.insert(it, l);
    weight.insert(weight.begin() + pos, w);
  }

  void close_run() { start.push_back(static_cast<int64_t>(line.size())); }

  int64_t bins() const { return static_cast<int64_t>(start.size()) - 1; }

  int64_t longest_run() const {
    int64_t longest = 0;
    for (int64_t b = 0; b < bins(); ++b) longest = std::max(longest, start[b + 1] - start[b]);
    return longest;
  }
};

/// Taps of one axis for all RoIs. Within a RoI every bin has the same number of taps,
/// `width[n]`: shorter runs are padded with zero-weight taps on a line the RoI already
/// reads. Equal counts let the inner loops use compile-time trip counts (unrolled, no
/// mispredicted loop exits), which matters because a bin typically has only 2 or 3 taps.
/// Lines are stored relative to the RoI's first line, `origin[n]`; `span[n]` lines
/// (at least 1) cover all of them.
template <typename T>
struct AxisTaps {
  std::vector<int64_t> line;
  std::vector<T> weight;
  std::vector<int64_t> first;   ///< per RoI: index of the taps of its bin 0
  std::vector<int64_t> width;   ///< per RoI: taps per bin
  std::vector<int64_t> origin;  ///< per RoI: smallest line read
  std::vector<int64_t> span;    ///< per RoI: largest line read - origin + 1

  void append(const RunBuilder<T>& runs) {
    const int64_t count = runs.longest_run();
    int64_t lowest = 0, highest = 0;
    if (!runs.line.empty()) {
      const auto [lo, hi] = std::minmax_element(runs.line.begin(), runs.line.end());
      lowest = *lo;
      highest = *hi;
    }
    first.push_back(static_cast<int64_t>(line.size()));
    width.push_back(count);
    origin.push_back(lowest);
    span.push_back(highest - lowest + 1);
    for (int64_t b = 0; b < runs.bins(); ++b) {
      const int64_t begin = runs.start[b], end = runs.start[b + 1];
      for (int64_t k = 0; k < count; ++k) {
        const bool real = begin + k < end;
        line.push_back(real ? runs.line[begin + k] - lowest : 0);
        weight.push_back(real ? runs.weight[begin + k] : T(0));
      }
    }
  }
};

/// One RoI in feature-map coordinates.
template <typename T>
struct RoiBox {
  int64_t batch;
  T start_y, start_x;   ///< top-left corner
  T height, width;      ///< extent, at least one cell when not aligned
};

/// Maps a RoI row (batch, x1, y1, x2, y2) to the feature map. The arithmetic is done in
/// T, in the same order as torchvision, so sample positions agree to the last bit: a
/// sample's position decides which cells it reads and whether it lies on the map.
template <typename T>
RoiBox<T> map_roi(const T* roi, const PoolParams& p, int64_t batch_size) {
  const T scale = static_cast<T>(p.spatial_scale);
  const T shift = p.aligned ? T(0.5) : T(0);
  // The index is truncated like torchvision does; test before converting (NaN, huge).
  TORCH_CHECK(roi[0] > T(-1) && roi[0] < static_cast<T>(batch_size),
              "psearch::roi_align: a RoI has batch index ", roi[0], " outside [0, ", batch_size,
              ")");
  RoiBox<T> box;
  box.batch = static_cast<int64_t>(roi[0]);
  box.start_x = roi[1] * scale - shift;
  box.start_y = roi[2] * scale - shift;
  box.width = (roi[3] * scale - shift) - box.start_x;
  box.height = (roi[4] * scale - shift) - box.start_y;
  if (!p.aligned) {
    box.width = std::max(box.width, T(1));
    box.height = std::max(box.height, T(1));
  }
  return box;
}

/// Samples per bin along one axis: the fixed sampling ratio, or enough samples that
/// they are at most one cell apart. A non-positive or NaN extent gives none (the bin
/// then pools nothing and stays 0); an absurdly large one is an error rather than an
/// endless loop.
template <typename T>
int64_t samples_per_bin(T extent, int64_t pooled, int64_t sampling_ratio) {
  if (sampling_ratio > 0) return sampling_ratio;
  const T grid = std::ceil(extent / static_cast<T>(pooled));
  if (!(grid > T(0))) return 0;
  TORCH_CHECK(grid <= T(1 << 20), "psearch::roi_align: a RoI ", extent,
              " cells long needs more than 2^20 samples per bin; check the RoI coordinates "
              "and spatial_scale");
  return static_cast<int64_t>(grid);
}

/// Adds the linear-interpolation taps of coordinate `v` on an axis of `size` cells.
/// Samples beyond one cell outside the map are dropped (they contribute 0); the rest
/// are clamped onto [0, size - 1], where the two neighbours coincide at the far border.
template <typename T>
void add_linear_taps(T v, int64_t size, int64_t stride, T scale, RunBuilder<T>& runs) {
  if (!(v >= T(-1) && v <= static_cast<T>(size))) return;  // also drops NaN
  if (v <= T(0)) v = T(0);
  int64_t lo = static_cast<int64_t>(v);
  int64_t hi = lo + 1;
  if (lo >= size - 1) {
    lo = hi = size - 1;
    v = static_cast<T>(lo);
  }
  const T frac = v - static_cast<T>(lo);
  runs.add(lo * stride, (T(1) - frac) * scale);
  runs.add(hi * stride, frac * scale);
}

/// Collects the taps of the `pooled` bins of one RoI axis. Sample k of bin b sits at
/// start + b * bin + (k + 0.5) * bin / grid (torchvision's expression order). Each tap
/// weight carries 1 / grid, so the product over both axes is the 1 / count average.
template <typename T>
void collect_axis_taps(T start, T extent, int64_t pooled, int64_t sampling_ratio, int64_t size,
                       int64_t stride, RunBuilder<T>& runs) {
  runs.clear();
  const T bin = extent / static_cast<T>(pooled);
  const int64_t grid = samples_per_bin(extent, pooled, sampling_ratio);
  const T scale = grid > 0 ? T(1) / static_cast<T>(grid) : T(0);
  for (int64_t b = 0; b < pooled; ++b) {
    for (int64_t k = 0; k < grid; ++k) {
      const T v = start + static_cast<T>(b) * bin +
                  static_cast<T>(k + 0.5) * bin / static_cast<T>(grid);
      add_linear_taps(v, size, stride, scale, runs);
    }
    runs.close_run();
  }
}

/// Raw pointers to the taps of one RoI, for the inner loops: bin ph of the y axis uses
/// y_line/y_weight[ph * ny, (ph + 1) * ny), likewise for x. Lines are relative to
/// `origin`, the plane offset of the RoI's first row and column; x_span columns from
/// there cover every column the RoI reads.
template <typename T>
struct RoiView {
  int64_t origin;
  const int64_t* y_line;
  const T* y_weight;
  int64_t ny;
  const int64_t* x_line;
  const T* x_weight;
  int64_t nx;
  int64_t x_span;
};

/// Taps of every RoI plus its batch item; computed once, shared by all channels.
template <typename T>
struct RoiTaps {
  std::vector<int64_t> batch;
  AxisTaps<T> y, x;

  RoiView<T> view(int64_t n) const {
    return {y.origin[n] + x.origin[n],
            y.line.data() + y.first[n], y.weight.data() + y.first[n], y.width[n],
            x.line.data() + x.first[n], x.weight.data() + x.first[n], x.width[n], x.span[n]};
  }
};

/// Builds the taps of all RoIs (checking their batch indices on the way).
template <typename T>
RoiTaps<T> build_roi_taps(const at::Tensor& rois, const PoolParams& p, const MapShape& map) {
  const T* data = rois.const_data_ptr<T>();
  const int64_t n_rois = rois.size(0);
  RoiTaps<T> taps;
  taps.batch.resize(n_rois);
  RunBuilder<T> runs;
  for (int64_t n = 0; n < n_rois; ++n) {
    const RoiBox<T> box = map_roi(data + 5 * n, p, map.batch);
    taps.batch[n] = box.batch;
    collect_axis_taps(box.start_y, box.height, p.pooled_height, p.sampling_ratio, map.height,
                      map.width, runs);
    taps.y.append(runs);
    collect_axis_taps(box.start_x, box.width, p.pooled_width, p.sampling_ratio, map.width, 1,
                      runs);
    taps.x.append(runs);
  }
  return taps;
}

/// u[c] = sum_i weight[i] * rows[line[i] + c] for c < span: one RoI row interpolated
/// along y over the RoI's columns. Contiguous in c, so it vectorizes.
template <typename T, int NY>
void interpolate_rows(const T* rows, const int64_t* line, const T* weight, int64_t ny,
                      int64_t span, T* u) {
  if constexpr (NY > 0) ny = NY;
  for (int64_t c = 0; c < span; ++c) {
    T value = 0;
    for (int64_t i = 0; i < ny; ++i) value += weight[i] * rows[line[i] + c];
    u[c] = value;
  }
}

/// rows[line[i] + c] += weight[i] * u[c] for c < span: the adjoint of interpolate_rows.
template <typename T, int NY>
void spread_rows(const T* u, const int64_t* line, const T* weight, int64_t ny, int64_t span,
                 T* rows) {
  if constexpr (NY > 0) ny = NY;
  for (int64_t i = 0; i < ny; ++i) {
    T* row = rows + line[i];
    const T w = weight[i];
    for (int64_t c = 0; c < span; ++c) row[c] += w * u[c];
  }
}

/// Pools one RoI from one feature plane into its pooled_height x pooled_width bins.
/// Separably, per bin row: interpolate along y into `u` (x_span values, vectorized),
/// then each bin combines its few x taps from `u`. NY / NX > 0 fix the taps per bin at
/// compile time; 0 reads them from the view.
template <typename T, int NY, int NX>
struct PoolRoi {
  static void run(const T* plane, const RoiView<T>& v, const PoolParams& p, T* u, T* out) {
    const int64_t nx = NX > 0 ? NX : v.nx;
    for (int64_t ph = 0; ph < p.pooled_height; ++ph) {
      interpolate_rows<T, NY>(plane + v.origin, v.y_line + ph * v.ny, v.y_weight + ph * v.ny,
                              v.ny, v.x_span, u);
      for (int64_t pw = 0; pw < p.pooled_width; ++pw) {
        const int64_t* x_line = v.x_line + pw * nx;
        const T* x_weight = v.x_weight + pw * nx;
        T value = 0;
        for (int64_t j = 0; j < nx; ++j) value += x_weight[j] * u[x_line[j]];
        out[ph * p.pooled_width + pw] = value;
      }
    }
  }
};

/// Scatters the output gradient of one RoI (strided: it may be an expanded view) back
/// onto one feature plane: the transpose of PoolRoi, i.e. per bin row, gather the bins'
/// x taps into `u`, then spread `u` over the rows (vectorized).
template <typename T, int NY, int NX>
struct UnpoolRoi {
  static void run(const T* grad, const int64_t* grad_stride, const RoiView<T>& v,
                  const PoolParams& p, T* u, T* plane) {
    const int64_t nx = NX > 0 ? NX : v.nx;
    for (int64_t ph = 0; ph < p.pooled_height; ++ph) {
      std::fill(u, u + v.x_span, T(0));
      bool any = false;
      for (int64_t pw = 0; pw < p.pooled_width; ++pw) {
        const T g = grad[ph * grad_stride[0] + pw * grad_stride[1]];
        if (g == T(0)) continue;  // common for sparse gradients; would add nothing
        any = true;
        const int64_t* x_line = v.x_line + pw * nx;
        const T* x_weight = v.x_weight + pw * nx;
        for (int64_t j = 0; j < nx; ++j) u[x_line[j]] += g * x_weight[j];
      }
      if (!any) continue;
      spread_rows<T, NY>(u, v.y_line + ph * v.ny, v.y_weight + ph * v.ny, v.ny, v.x_span,
                         plane + v.origin);
    }
  }
};

/// Runs Kernel<T, NY, NX>::run with the tap counts as compile-time constants when they
/// are 1 to 3 (the usual cases: 2 taps per sample, merged across 1 or 2 samples), and
/// with run-time counts otherwise.
template <typename T, template <typename, int, int> class Kernel, int NY, typename... Args>
void run_with_x_taps(int64_t nx, Args&&... args) {
  switch (nx) {
    case 1: return Kernel<T, NY, 1>::run(args...);
    case 2: return Kernel<T, NY, 2>::run(args...);
    case 3: return Kernel<T, NY, 3>::run(args...);
    default: return Kernel<T, NY, 0>::run(args...);
  }
}

template <typename T, template <typename, int, int> class Kernel, typename... Args>
void run_with_taps(const RoiView<T>& v, Args&&... args) {
  switch (v.ny) {
    case 1: return run_with_x_taps<T, Kernel, 1>(v.nx, args...);
    case 2: return run_with_x_taps<T, Kernel, 2>(v.nx, args...);
    case 3: return run_with_x_taps<T, Kernel, 3>(v.nx, args...);
    default: return run_with_x_taps<T, Kernel, 0>(v.nx, args...);
  }
}

/// Calls fn(n, c_begin, c_end, scratch) for every RoI n and every block of channels,
/// in parallel over the blocks. A thread walks all RoIs for one block: the block's input
/// planes (e.g. 16 channels x 2 images of 50 x 75) stay in cache, and each RoI's outputs
/// or output gradients for the block form one contiguous stretch, which streams well;
/// at K x C x 14 x 14 those are by far the largest tensors. Work on channel c touches
/// only planes (*, c), so threads never write the same plane and need no atomics.
/// `scratch` holds one row of the map, private to the calling thread.
template <typename T, typename Fn>
void for_each_roi_and_channel_block(int64_t n_rois, const MapShape& map, const Fn& fn) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t block = std::clamp<int64_t>((map.channels + threads - 1) / threads, 1, 16);
  const int64_t blocks = (map.channels + block - 1) / block;
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<T> scratch(static_cast<size_t>(map.width));
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t c_begin = blk * block;
      const int64_t c_end = std::min(map.channels, c_begin + block);
      for (int64_t n = 0; n < n_rois; ++n) fn(n, c_begin, c_end, scratch.data());
    }
  });
}

template <typename T>
void roi_align_forward_impl(const at::Tensor& input, const at::Tensor& rois, const PoolParams& p,
                            const MapShape& map, at::Tensor& output) {
  const RoiTaps<T> taps = build_roi_taps<T>(rois, p, map);
  const T* in = input.const_data_ptr<T>();
  T* out = output.mutable_data_ptr<T>();
  const int64_t plane_size = map.height * map.width;
  const int64_t bins = p.pooled_height * p.pooled_width;
  for_each_roi_and_channel_block<T>(
      rois.size(0), map, [&](int64_t n, int64_t c_begin, int64_t c_end, T* scratch) {
        const RoiView<T> v = taps.view(n);
        for (int64_t c = c_begin; c < c_end; ++c) {
          const T* plane = in + (taps.batch[n] * map.channels + c) * plane_size;
          run_with_taps<T, PoolRoi>(v, plane, v, p, scratch, out + (n * map.channels + c) * bins);
        }
      });
}

template <typename T>
void roi_align_backward_impl(const at::Tensor& grad, const at::Tensor& rois, const PoolParams& p,
                             const MapShape& map, at::Tensor& grad_input) {
  const RoiTaps<T> taps = build_roi_taps<T>(rois, p, map);
  const T* g = grad.const_data_ptr<T>();
  const int64_t grad_stride[2] = {grad.stride(2), grad.stride(3)};
  T* gin = grad_input.mutable_data_ptr<T>();
  const int64_t plane_size = map.height * map.width;
  for_each_roi_and_channel_block<T>(
      rois.size(0), map, [&](int64_t n, int64_t c_begin, int64_t c_end, T* scratch) {
        const RoiView<T> v = taps.view(n);
        for (int64_t c = c_begin; c < c_end; ++c) {
          T* plane = gin + (taps.batch[n] * map.channels + c) * plane_size;
          run_with_taps<T, UnpoolRoi>(v, g + n * grad.stride(0) + c * grad.stride(1),
                                      grad_stride, v, p, scratch, plane);
        }
      });
}

void check_rois(const at::Tensor& rois, const at::Tensor& other, const char* other_name) {
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5,
              "psearch::roi_align: rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got ",
              rois.sizes());
  TORCH_CHECK(rois.scalar_type() == other.scalar_type(), "psearch::roi_align: rois and ",
              other_name, " must have the same dtype, got ", rois.scalar_type(), " and ",
              other.scalar_type());
  TORCH_CHECK(rois.device() == other.device(), "psearch::roi_align: rois and ", other_name,
              " must be on the same device, got ", rois.device(), " and ", other.device());
}

void check_params(const PoolParams& p) {
  TORCH_CHECK(p.pooled_height > 0 && p.pooled_width > 0,
              "psearch::roi_align: output size must be positive, got ", p.pooled_height, "x",
              p.pooled_width);
}

at::Tensor roi_align_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                 double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                                 int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(input.dim() == 4, "psearch::roi_align: input must have shape [B, C, H, W], got ",
              input.sizes());
  check_rois(rois, input, "input");
  const PoolParams p{spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned};
  check_params(p);
  const MapShape map{input.size(0), input.size(1), input.size(2), input.size(3)};
  const std::vector<int64_t> out_shape{rois.size(0), map.channels, pooled_height, pooled_width};
  // An empty map has no cell to read: every bin pools nothing and stays 0.
  if (map.height == 0 || map.width == 0) return at::zeros(out_shape, input.options());
  // Every bin of every RoI is written below (bad batch indices throw first), so the
  // output, often hundreds of MB, needs no zero fill.
  at::Tensor output = at::empty(out_shape, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "psearch::roi_align", [&] {
    roi_align_forward_impl<scalar_t>(input_c, rois_c, p, map, output);
  });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                  double spatial_scale, int64_t pooled_height,
                                  int64_t pooled_width, int64_t batch_size, int64_t channels,
                                  int64_t height, int64_t width, int64_t sampling_ratio,
                                  bool aligned) {
  check_rois(rois, grad, "grad");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                  grad.size(2) == pooled_height && grad.size(3) == pooled_width,
              "psearch::_roi_align_backward: grad must have shape [", rois.size(0), ", ",
              channels, ", ", pooled_height, ", ", pooled_width, "], got ", grad.sizes());
  const PoolParams p{spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned};
  check_params(p);
  const MapShape map{batch_size, channels, height, width};
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;
  const at::Tensor rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "psearch::_roi_align_backward", [&] {
    roi_align_backward_impl<scalar_t>(grad, rois_c, p, map, grad_input);
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CPU, m) {
  m.impl("roi_align", &roi_align_forward_cpu);
  m.impl("_roi_align_backward", &roi_align_backward_cpu);
}

}  // namespace psearch::ops
