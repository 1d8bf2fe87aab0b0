#include "psearch/modeling/losses/pcnet_losses.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <limits>
#include <vector>

namespace psearch::modeling {

at::Tensor distance_loss_sum(const at::Tensor& offsets, const at::Tensor& strides, const at::Tensor& heights,
                             int64_t sets) {
  constexpr int64_t kPoints = 9;
  TORCH_CHECK(offsets.dim() == 2 && offsets.size(1) == 2 * kPoints, "distance_loss: offsets must be [N, 18], got ",
              offsets.sizes());
  TORCH_CHECK(sets >= 2 && sets <= kPoints, "distance_loss: sets must be in [2, 9], got ", sets);
  if (offsets.size(0) == 0) return offsets.sum();
  const at::Tensor s = strides.to(offsets.dtype()).unsqueeze(1);
  // Vertical position of each tap's sampling point relative to the cell: its kernel row
  // (-1, 0, 1) plus the learned dy, in cells, times the stride.
  const at::Tensor rows = at::arange(kPoints, offsets.options()).div(3, "floor").sub(1);
  const at::Tensor y = (offsets.slice(1, 0, 2 * kPoints, 2) + rows) * s;  // [N, 9]
  const int64_t per_set = kPoints / sets;
  std::vector<at::Tensor> centres;
  for (int64_t i = 0; i < sets; ++i) {
    const int64_t end = i + 1 == sets ? kPoints : (i + 1) * per_set;
    centres.push_back(y.slice(1, i * per_set, end).mean(1));
  }
  const at::Tensor m = at::stack(centres, 1);  // [N, M]
  const at::Tensor h = heights.to(offsets.dtype());
  const at::Tensor gaps = m.slice(1, 1) - m.slice(1, 0, sets - 1) - (h / static_cast<double>(sets)).unsqueeze(1);
  return (gaps.pow(2).sum(1) / h).sum();
}

at::Tensor triplet_loss_sum(const at::Tensor& csa, const at::Tensor& point, const at::Tensor& pids, double margin,
                            bool official, int64_t* count) {
  TORCH_CHECK(csa.sizes() == point.sizes() && csa.dim() == 2 && pids.numel() == csa.size(0),
              "triplet_loss: csa and point features [N, D] and pids [N]");
  const at::Tensor different = pids.unsqueeze(0) != pids.unsqueeze(1);  // [N, N]
  const at::Tensor has_negative = different.any(1);
  if (count) *count = has_negative.sum().item<int64_t>();
  const double inf = std::numeric_limits<double>::infinity();
  at::Tensor terms;
  if (official) {
    const at::Tensor positive = (csa * point).sum(1);
    const at::Tensor negative = csa.matmul(csa.t()).masked_fill(different.logical_not(), -inf).amax(1);
    terms = at::relu(margin + negative - positive);
  } else {
    const at::Tensor positive = (csa - point).pow(2).sum(1);
    // |f_k - f'_j|^2 for every pair, the non-negatives masked out before the min.
    const at::Tensor d = (csa.pow(2).sum(1, true) + point.pow(2).sum(1).unsqueeze(0) - 2 * csa.matmul(point.t()));
    const at::Tensor negative = d.masked_fill(different.logical_not(), inf).amin(1);
    terms = at::relu(margin + positive - negative);
  }
  return at::where(has_negative, terms, at::zeros_like(terms)).sum();
}

}  // namespace psearch::modeling
