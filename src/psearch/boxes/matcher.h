#pragma once
/// Assignment of predictions (anchors, proposals) to ground-truth boxes by match quality,
/// with the semantics of torchvision.models.detection._utils.Matcher.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace psearch::boxes {

class Matcher {
 public:
  /// Value for predictions whose best quality is below low_threshold (background).
  static constexpr int64_t kBelowLowThreshold = -1;
  /// Value for predictions whose best quality is in [low_threshold, high_threshold)
  /// (ignored by the losses).
  static constexpr int64_t kBetweenThresholds = -2;

  /// Qualities >= high_threshold are matches, those in [low_threshold, high_threshold)
  /// become kBetweenThresholds and those < low_threshold kBelowLowThreshold.
  /// allow_low_quality_matches: also match each ground truth to the predictions with which
  /// it has its highest quality (all of them when tied), even below high_threshold, so
  /// that every ground truth gets at least one prediction (the RPN rule of Faster R-CNN).
  /// Throws if low_threshold > high_threshold.
  Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches = false);

  double high_threshold() const { return high_threshold_; }
  double low_threshold() const { return low_threshold_; }
  bool allow_low_quality_matches() const { return allow_low_quality_matches_; }

  /// match_quality_matrix: [M, N] quality (usually IoU) of ground truth m with prediction n.
  /// Returns int64 [N]: the matched ground-truth index in [0, M) of each prediction (the
  /// first of equal best ones), or kBelowLowThreshold / kBetweenThresholds.
  /// Thresholds are compared in the dtype of the matrix (so 0.7 means float(0.7) for a
  /// float32 matrix), as in torchvision.
  /// Throws if the matrix is not 2-D, or is empty: M == 0 (an image without ground truth)
  /// or N == 0 (no predictions) cannot be matched, as in torchvision; callers handle
  /// images without ground truth before matching.
  at::Tensor operator()(const at::Tensor& match_quality_matrix) const;

 private:
  double high_threshold_;
  double low_threshold_;
  bool allow_low_quality_matches_;
};

}  // namespace psearch::boxes
