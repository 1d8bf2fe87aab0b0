#include "psearch/boxes/matcher.h"

#include <ATen/ops/where.h>
#include <c10/util/Exception.h>

namespace psearch::boxes {

Matcher::Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches)
    : high_threshold_(high_threshold),
      low_threshold_(low_threshold),
      allow_low_quality_matches_(allow_low_quality_matches) {
  TORCH_CHECK(low_threshold <= high_threshold, "Matcher: low_threshold (", low_threshold,
              ") must be <= high_threshold (", high_threshold, ")");
}

at::Tensor Matcher::operator()(const at::Tensor& match_quality_matrix) const {
  TORCH_CHECK(match_quality_matrix.defined() && match_quality_matrix.dim() == 2,
              "Matcher: match_quality_matrix must have shape [M ground truths, N predictions], got ",
              match_quality_matrix.defined() ? match_quality_matrix.sizes() : at::IntArrayRef{});
  TORCH_CHECK(match_quality_matrix.size(0) > 0,
              "Matcher: no ground-truth boxes (match_quality_matrix is ",
              match_quality_matrix.sizes(),
              "); an image without ground truth must be handled before matching");
  TORCH_CHECK(match_quality_matrix.size(1) > 0,
              "Matcher: no predicted boxes (match_quality_matrix is ", match_quality_matrix.sizes(),
              "); there is nothing to match");

  // Best ground truth for each prediction; max() returns the first index among ties.
  const auto [matched_vals, best_gt] = match_quality_matrix.max(0);  // [N], [N]
  const at::Tensor below = matched_vals.lt(low_threshold_);
  const at::Tensor between = matched_vals.ge(low_threshold_).logical_and(matched_vals.lt(high_threshold_));
  at::Tensor matches = best_gt.masked_fill(below, kBelowLowThreshold)
                           .masked_fill_(between, kBetweenThresholds);

  if (allow_low_quality_matches_) {
    // For each ground truth, every prediction attaining its highest quality (ties
    // included) gets back its best ground truth, even if that quality is low. Note the
    // restored index is the prediction's own best ground truth, which need not be the
    // ground truth that selected it when two ground truths compete for one prediction.
    const at::Tensor best_per_gt = std::get<0>(match_quality_matrix.max(1));  // [M]
    const at::Tensor is_best_for_some_gt =
        match_quality_matrix.eq(best_per_gt.unsqueeze(1)).any(0);  // [N]
    matches = at::where(is_best_for_some_gt, best_gt, matches);
  }
  return matches;
}

}  // namespace psearch::boxes
