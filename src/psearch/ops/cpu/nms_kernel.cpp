// CPU kernel of psearch::nms: greedy non-maximum suppression with the semantics of
// torchvision.ops.nms (IoU strictly above the threshold suppresses, ties in score keep
// input order, kept indices are returned by decreasing score).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sort.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace psearch::ops {
namespace {

void check_nms_inputs(const at::Tensor& dets, const at::Tensor& scores) {
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4,
              "psearch::nms: dets must have shape [N, 4] (x1, y1, x2, y2), got ", dets.sizes());
  TORCH_CHECK(scores.dim() == 1, "psearch::nms: scores must have shape [N], got ", scores.sizes());
  TORCH_CHECK(dets.size(0) == scores.size(0),
              "psearch::nms: dets and scores must describe the same number of boxes, got ",
              dets.size(0), " boxes and ", scores.size(0), " scores");
  TORCH_CHECK(dets.scalar_type() == scores.scalar_type(),
              "psearch::nms: dets and scores must have the same dtype, got ", dets.scalar_type(),
              " and ", scores.scalar_type());
  TORCH_CHECK(dets.device() == scores.device(),
              "psearch::nms: dets and scores must be on the same device, got ", dets.device(),
              " and ", scores.device());
  TORCH_CHECK(dets.is_cpu(), "psearch::nms: the CPU kernel got tensors on ", dets.device());
}

/// The threshold to compare IoUs of type T against. torchvision computes the IoU in T
/// and compares it with the double threshold, so for float the test is
/// `double(iou) > threshold`. A float exceeds the double `threshold` exactly when it
/// exceeds the largest float not above `threshold`, which lets the sweep compare in
/// float (vectorizable) without changing a single decision. Plain rounding would not:
/// float(0.1) > 0.1, so an IoU of exactly float(0.1) would escape suppression.
template <typename T>
T threshold_as(double threshold) {
  if constexpr (std::is_same_v<T, double>) {
    return threshold;
  } else {
    T rounded = static_cast<T>(threshold);
    if (static_cast<double>(rounded) > threshold) {
      rounded = std::nextafter(rounded, -std::numeric_limits<T>::infinity());
    }
    return rounded;
  }
}

/// Suppression flag as wide as T: equal lane widths let the compiler vectorize the
/// sweep for double as well as for float.
template <typename T>
using Flag = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;

/// Candidate boxes in decreasing score order, one array per field, so that the
/// suppression sweep reads memory sequentially and compiles to SIMD code.
template <typename T>
struct SortedBoxes {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<int64_t> index;  ///< position of the box in the caller's tensors

  explicit SortedBoxes(int64_t n) : x1(n), y1(n), x2(n), y2(n), area(n), index(n) {}

  void move(int64_t from, int64_t to) {
    x1[to] = x1[from];
    y1[to] = y1[from];
    x2[to] = x2[from];
    y2[to] = y2[from];
    area[to] = area[from];
    index[to] = index[from];
  }
};

/// Copies the boxes into score order. Areas use torchvision's formula (no +1) in T.
template <typename T>
SortedBoxes<T> gather_sorted(const at::Tensor& dets, const at::Tensor& scores) {
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  const at::Tensor boxes = dets.contiguous();
  const T* box = boxes.const_data_ptr<T>();
  const int64_t* idx = order.const_data_ptr<int64_t>();
  const int64_t n = boxes.size(0);
  SortedBoxes<T> sorted(n);
  for (int64_t k = 0; k < n; ++k) {
    const T* b = box + 4 * idx[k];
    sorted.x1[k] = b[0];
    sorted.y1[k] = b[1];
    sorted.x2[k] = b[2];
    sorted.y2[k] = b[3];
    sorted.area[k] = (b[2] - b[0]) * (b[3] - b[1]);
    sorted.index[k] = idx[k];
  }
  return sorted;
}

/// Marks every candidate of [begin, end) whose IoU with the kept box `k` exceeds the
/// threshold and returns how many of them were still alive. The loop has no branches
/// (a candidate already suppressed is simply marked again), so it vectorizes; the
/// IoU expression keeps torchvision's operation order so decisions match bit for bit.
template <typename T>
int64_t suppress_overlaps(const SortedBoxes<T>& b, int64_t k, int64_t begin, int64_t end,
                          T threshold, Flag<T>* dead) {
  const T kx1 = b.x1[k], ky1 = b.y1[k], kx2 = b.x2[k], ky2 = b.y2[k], karea = b.area[k];
  const T* x1 = b.x1.data();
  const T* y1 = b.y1.data();
  const T* x2 = b.x2.data();
  const T* y2 = b.y2.data();
  const T* area = b.area.data();
  int64_t newly_dead = 0;
  for (int64_t j = begin; j < end; ++j) {
    const T ix1 = std::max(kx1, x1[j]);
    const T iy1 = std::max(ky1, y1[j]);
    const T ix2 = std::min(kx2, x2[j]);
    const T iy2 = std::min(ky2, y2[j]);
    const T w = std::max(T(0), ix2 - ix1);
    const T h = std::max(T(0), iy2 - iy1);
    const T inter = w * h;
    const T iou = inter / (karea + area[j] - inter);
    const Flag<T> overlaps = iou > threshold ? 1 : 0;
    newly_dead += overlaps & (dead[j] ^ 1);
    dead[j] |= overlaps;
  }
  return newly_dead;
}

/// Moves the live candidates of [begin, end) to the front of that range (keeping their
/// order) and returns the new end. Shrinking the arrays keeps later sweeps short when
/// many boxes get suppressed.
template <typename T>
int64_t compact(SortedBoxes<T>& b, int64_t begin, int64_t end, Flag<T>* dead) {
  int64_t out = begin;
  for (int64_t j = begin; j < end; ++j) {
    if (!dead[j]) {
      b.move(j, out);
      ++out;
    }
  }
  std::fill(dead + begin, dead + end, Flag<T>(0));
  return out;
}

/// Greedy NMS over boxes already sorted by score: the best live box is kept and
/// suppresses the boxes after it, which is what torchvision does.
template <typename T>
std::vector<int64_t> greedy_nms(SortedBoxes<T>& boxes, T threshold) {
  int64_t end = static_cast<int64_t>(boxes.index.size());
  std::vector<Flag<T>> dead(static_cast<size_t>(end), 0);
  std::vector<int64_t> keep;
  int64_t dead_in_range = 0;  // suppressed entries still stored in [i + 1, end)
  for (int64_t i = 0; i < end; ++i) {
    if (dead[i]) {
      --dead_in_range;
      continue;
    }
    keep.push_back(boxes.index[i]);
    dead_in_range += suppress_overlaps(boxes, i, i + 1, end, threshold, dead.data());
    // Compact once at least half of the remaining range is dead: each compaction
    // costs one pass and at least halves that range, so the total work stays linear.
    if (2 * dead_in_range > end - i - 1) {
      end = compact(boxes, i + 1, end, dead.data());
      dead_in_range = 0;
    }
  }
  return keep;
}

at::Tensor nms_cpu(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  check_nms_inputs(dets, scores);
  if (dets.size(0) == 0) {
    return at::empty({0}, dets.options().dtype(at::kLong));
  }
  std::vector<int64_t> keep;
  AT_DISPATCH_FLOATING_TYPES(dets.scalar_type(), "psearch::nms", [&] {
    SortedBoxes<scalar_t> boxes = gather_sorted<scalar_t>(dets, scores);
    keep = greedy_nms(boxes, threshold_as<scalar_t>(iou_threshold));
  });
  at::Tensor result = at::empty({static_cast<int64_t>(keep.size())}, dets.options().dtype(at::kLong));
  std::memcpy(result.mutable_data_ptr<int64_t>(), keep.data(), keep.size() * sizeof(int64_t));
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, CPU, m) { m.impl("nms", &nms_cpu); }

}  // namespace psearch::ops
