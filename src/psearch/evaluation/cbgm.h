#pragma once
/// Context Bipartite Graph Matching (CBGM, SeqNet): re-scores one gallery frame for a query
/// by matching the people of the query image (the query box first) with the people of the
/// frame as a maximum-weight bipartite assignment. Used by the evaluator (--cbgm) and by
/// gallery search (psearch search --cbgm).
#include <cstdint>
#include <vector>

namespace psearch::evaluation {

struct CbgmMatch {
  int64_t column = -1;     ///< the frame detection matched with the query box; -1: none
  float similarity = 0.0f;  ///< the largest weight among the matched pairs: that detection's new similarity
};

/// weight: [rows, cols] row-major similarities between the query context (row 0: the query
/// box, then other people of the query image, most confident first) and the frame's
/// detections. Solved exactly (dlib's Hungarian algorithm on weights scaled to integers).
CbgmMatch cbgm_match(const std::vector<float>& weight, int64_t rows, int64_t cols);

}  // namespace psearch::evaluation
