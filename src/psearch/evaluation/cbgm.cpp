#include "psearch/evaluation/cbgm.h"

#include <dlib/optimization/max_cost_assignment.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace psearch::evaluation {

CbgmMatch cbgm_match(const std::vector<float>& weight, int64_t rows, int64_t cols) {
  CbgmMatch match;
  if (rows <= 0 || cols <= 0) return match;
  double max_abs = 1.0;
  for (const float w : weight) max_abs = std::max(max_abs, std::abs(static_cast<double>(w)));
  // dlib solves the square, integer problem: scale the weights (to about 1e-9 resolution)
  // and pad with zero-weight dummies, which leaves the best matching of the smaller side.
  const int64_t size = std::max(rows, cols);
  const double scale = 1e9 / max_abs;
  dlib::matrix<long> cost(size, size);
  cost = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) cost(i, j) = std::lround(weight[i * cols + j] * scale);
  const std::vector<long> assignment = dlib::max_cost_assignment(cost);
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < rows; ++i)
    if (assignment[i] < cols) best = std::max(best, weight[i * cols + assignment[i]]);
  if (assignment[0] < cols) {
    match.column = assignment[0];
    match.similarity = best;
  }
  return match;
}

}  // namespace psearch::evaluation
