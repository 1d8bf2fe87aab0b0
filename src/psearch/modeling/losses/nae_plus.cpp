#include "psearch/modeling/losses/nae_plus.h"
#include "psearch/util/traceable.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/binary_cross_entropy_with_logits.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>

namespace psearch::modeling {

namespace {

/// One axis of a RoI's label mask: `size` pixels, ones on [start, end).
struct AxisSpan {
  int64_t size = 0;
  int64_t start = 0;
  int64_t end = 0;
};

/// The official rasterisation along one axis, in the boxes' own precision T (its torch ops
/// run in the tensors' dtype): size = ceil(hi - lo); ones from floor(max(lo, glo) - lo) to
/// ceil(min(hi, ghi) - lo) inclusive, clipped to the mask. Unlike the official code (whose
/// negative slice ends then count from the far side of the mask) an empty intersection
/// gives no ones at all.
template <typename T>
AxisSpan axis_span(T lo, T hi, T glo, T ghi) {
  AxisSpan span;
  span.size = static_cast<int64_t>(std::ceil(hi - lo));
  const T inter_lo = std::max(lo, glo);
  const T inter_hi = std::min(hi, ghi);
  if (span.size <= 0 || !(inter_hi > inter_lo)) return span;
  span.start = static_cast<int64_t>(std::floor(inter_lo - lo));
  span.end = std::min(static_cast<int64_t>(std::ceil(inter_hi - lo)) + 1, span.size);
  return span;
}

/// The indicator of [start, end) over `size` pixels resized to `out` samples the way
/// upsample_bilinear2d (align_corners = false, no explicit scale) does along one axis:
/// source x = max((i + 0.5) * size / out - 0.5, 0), blended between floor(x) and the next
/// pixel (the last pixel repeats). Bilinear resizing is separable and so is the box mask,
/// so the k x k label map is the outer product of the two axes' profiles.
template <typename T>
std::vector<T> resized_profile(const AxisSpan& span, int64_t out) {
  std::vector<T> profile(out, T(0));
  if (span.end <= span.start) return profile;
  const auto inside = [&](int64_t p) { return p >= span.start && p < span.end ? T(1) : T(0); };
  const T scale = static_cast<T>(span.size) / static_cast<T>(out);
  for (int64_t i = 0; i < out; ++i) {
    const T source = std::max(scale * (static_cast<T>(i) + T(0.5)) - T(0.5), T(0));
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(source)), span.size - 1);
    const T lambda = std::min(std::max(source - static_cast<T>(i0), T(0)), T(1));
    const int64_t i1 = i0 + (i0 < span.size - 1 ? 1 : 0);
    profile[i] = (T(1) - lambda) * inside(i0) + lambda * inside(i1);
  }
  return profile;
}

template <typename T>
at::Tensor pixel_labels_cpu(const at::Tensor& proposals, const at::Tensor& gt_boxes, int64_t k) {
  const int64_t n = proposals.size(0);
  const T* p = proposals.data_ptr<T>();
  const T* g = gt_boxes.data_ptr<T>();
  std::vector<T> labels(n * k * k, T(0));
  for (int64_t r = 0; r < n; ++r) {
    const T* pr = p + 4 * r;
    const T* gr = g + 4 * r;
    const std::vector<T> px = resized_profile<T>(axis_span(pr[0], pr[2], gr[0], gr[2]), k);
    const std::vector<T> py = resized_profile<T>(axis_span(pr[1], pr[3], gr[1], gr[3]), k);
    T* out = labels.data() + r * k * k;
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < k; ++j) out[i * k + j] = py[i] * px[j];
    }
  }
  return at::tensor(labels, at::TensorOptions().dtype(proposals.scalar_type())).view({n, 1, k, k});
}

}  // namespace

PixelWiseNormAwareEmbeddingImpl::PixelWiseNormAwareEmbeddingImpl() {
  rescaler = register_module("rescaler", NormRescaler());
}

PixelNormAwareOutput PixelWiseNormAwareEmbeddingImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "PixelWiseNormAwareEmbedding expects x [N, D, H, W], got ", x.sizes());
  const at::Tensor norms = x.norm(2, {1}, /*keepdim=*/true);  // [N, 1, H, W]
  const at::Tensor angle = x / norms.clamp_min(1e-12);
  const at::Tensor logits = rescaler->forward(norms);
  const at::Tensor prob = at::sigmoid(logits);
  return {angle, prob, logits, (angle * prob).mean({2, 3})};
}

at::Tensor nae_plus_pixel_labels(const at::Tensor& proposals, const at::Tensor& gt_boxes,
                                 int64_t k) {
  TORCH_CHECK(
      proposals.dim() == 2 && proposals.size(1) == 4 && gt_boxes.sizes() == proposals.sizes(),
      "nae_plus_pixel_labels expects proposals and gt_boxes [N, 4], got ", proposals.sizes(),
      " and ", gt_boxes.sizes());
  TORCH_CHECK(k > 0, "nae_plus_pixel_labels: k must be positive, got ", k);
  TORCH_CHECK(proposals.is_floating_point(), "nae_plus_pixel_labels expects float boxes");
  // A few hundred RoIs of 4 numbers: the closed form runs on the CPU.
  const at::ScalarType dtype = proposals.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor p = proposals.detach().to(at::kCPU, dtype).contiguous();
  const at::Tensor g = gt_boxes.detach().to(at::kCPU, dtype).contiguous();
  const at::Tensor labels =
      dtype == at::kDouble ? pixel_labels_cpu<double>(p, g, k) : pixel_labels_cpu<float>(p, g, k);
  return labels.to(proposals.device(), proposals.scalar_type());
}

at::Tensor nae_plus_detection_loss(const at::Tensor& logits, const at::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 4 && logits.sizes() == labels.sizes(),
              "nae_plus_detection_loss expects logits and labels [N, 1, H, W], got ",
              logits.sizes(), " and ", labels.sizes());
  if (logits.numel() == 0) return logits.sum();  // no RoI: 0, not the NaN of an empty mean
  return at::binary_cross_entropy_with_logits(logits, labels.to(logits.scalar_type()));
}

at::Tensor nae_plus_scores(const at::Tensor& logits, const std::vector<int64_t>& boxes_per_image) {
  TORCH_CHECK(logits.dim() == 4, "nae_plus_scores expects logits [N, 1, H, W], got ",
              logits.sizes());
  int64_t total = 0;
  for (int64_t n : boxes_per_image) total += n;
  TORCH_CHECK(total == logits.size(0), "nae_plus_scores: boxes_per_image sum to ", total,
              " but there are ", logits.size(0), " RoIs");
  // The mean is diluted by background pixels inside every box; stretching by the image's
  // best box restores a usable range (Sec. 3.2). The official code divides by the maximum
  // over the whole batch, which is the same for its one-image test batches.
  const at::Tensor mean_prob = at::sigmoid(logits).mean({1, 2, 3});
  std::vector<at::Tensor> per_image;
  for (const at::Tensor& block : util::split_rows(mean_prob, boxes_per_image)) {
    // The maximum over the block and 0 (probabilities are positive, so the same value):
    // an image without boxes then needs no branch on its count, which tracing would freeze.
    const at::Tensor best = at::cat({block, at::zeros({1}, block.options())}).max();
    per_image.push_back(block / best.clamp_min(1e-12));
  }
  return at::cat(per_image);
}

at::Tensor nae_plus_embedding(const at::Tensor& pooled, const at::Tensor& scores) {
  TORCH_CHECK(pooled.dim() == 2 && scores.dim() == 1 && scores.size(0) == pooled.size(0),
              "nae_plus_embedding expects pooled [N, D] and scores [N], got ", pooled.sizes(),
              " and ", scores.sizes());
  return pooled / pooled.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12) * scores.unsqueeze(1);
}

at::Tensor fc_weight_to_conv1x1(const at::Tensor& fc_weight) {
  TORCH_CHECK(fc_weight.dim() == 2, "fc_weight_to_conv1x1 expects an FC weight [out, in], got ",
              fc_weight.sizes());
  // y = W x at every pixel is a 1x1 convolution with the same matrix.
  return fc_weight.detach().reshape({fc_weight.size(0), fc_weight.size(1), 1, 1}).clone();
}

}  // namespace psearch::modeling
