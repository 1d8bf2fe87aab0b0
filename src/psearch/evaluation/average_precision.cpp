#include "psearch/evaluation/average_precision.h"

#include <algorithm>
#include <string>
#include <stdexcept>

namespace psearch::evaluation {

double average_precision(const uint8_t* labels, const float* scores, size_t n) {
  // Only thresholds equal to a positive's score raise recall; every other threshold adds
  // (R - R_prev) = 0. So collect the distinct positive scores, then count, for each of
  // them, how many items (positive or not) score at least that much.
  std::vector<float> thresholds;
  for (size_t i = 0; i < n; ++i)
    if (labels[i]) thresholds.push_back(scores[i]);
  const size_t num_positive = thresholds.size();
  if (num_positive == 0) return 0.0;
  std::sort(thresholds.begin(), thresholds.end());
  std::vector<int64_t> positives_at(num_positive, 0);  // multiplicity of each distinct score
  {
    size_t distinct = 0;
    for (size_t i = 0; i < num_positive; ++i) {
      if (i > 0 && thresholds[i] == thresholds[distinct - 1]) {
        ++positives_at[distinct - 1];
      } else {
        thresholds[distinct] = thresholds[i];
        positives_at[distinct++] = 1;
      }
    }
    thresholds.resize(distinct);
    positives_at.resize(distinct);
  }
  // bucket[k] = number of items whose score lies in [thresholds[k-1], thresholds[k])
  // (bucket[0]: below every threshold, not needed).
  const size_t m = thresholds.size();
  std::vector<int64_t> bucket(m + 1, 0);
  for (size_t i = 0; i < n; ++i)
    ++bucket[std::upper_bound(thresholds.begin(), thresholds.end(), scores[i]) - thresholds.begin()];
  double ap = 0.0;
  int64_t at_or_above = 0, tp = 0;
  for (size_t k = m; k-- > 0;) {  // highest threshold first
    at_or_above += bucket[k + 1];
    tp += positives_at[k];
    ap += static_cast<double>(positives_at[k]) / static_cast<double>(num_positive) *
          (static_cast<double>(tp) / static_cast<double>(at_or_above));
  }
  return ap;
}

double average_precision(const std::vector<uint8_t>& labels, const std::vector<float>& scores) {
  if (labels.size() != scores.size())
    throw std::invalid_argument("average_precision: " + std::to_string(labels.size()) + " labels but " +
                                std::to_string(scores.size()) + " scores");
  return average_precision(labels.data(), scores.data(), labels.size());
}

}  // namespace psearch::evaluation
