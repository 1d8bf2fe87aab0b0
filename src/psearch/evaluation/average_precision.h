#pragma once
/// Step-wise average precision, equal to scikit-learn's `average_precision_score`.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace psearch::evaluation {

/// AP = sum over distinct score thresholds t, highest first, of (R(t) - R(t_prev)) * P(t),
/// where P(t) and R(t) are the precision and recall of the items scoring >= t and recall is
/// relative to the number of positive labels. Items with equal scores form one threshold, so
/// the order among ties never matters (scikit-learn's `average_precision_score`).
/// Returns 0 when no label is positive (scikit-learn warns and returns 0 too).
/// Throws std::invalid_argument when the two lists differ in length.
double average_precision(const std::vector<uint8_t>& labels, const std::vector<float>& scores);

/// The same over raw arrays of `n` items (no copy); used on the evaluator's hot path.
/// Runs in O(n log P) for P positives: only thresholds that hold a positive change recall.
double average_precision(const uint8_t* labels, const float* scores, size_t n);

}  // namespace psearch::evaluation
