#pragma once
/// The person-search evaluation protocol (mAP and top-k), as shared by OIM, NAE, SeqNet and
/// PCNet and described in docs/results_format.md: per query, gallery detections scoring
/// >= det_thresh are ranked by dot-product similarity with the query feature; in each gallery
/// image holding the query person the most similar detection whose IoU with the ground truth
/// reaches min(0.5, w*h / ((w+10)(h+10))) is the one true positive; AP is scikit-learn's
/// average precision scaled by count_tp / count_gt; top-k looks at all gallery detections.
/// Optional Context Bipartite Graph Matching (SeqNet) re-scores the most similar images.
#include <cstdint>
#include <vector>

#include "psearch/data/dataset.h"
#include "psearch/evaluation/detections.h"

namespace psearch::evaluation {

struct SearchOptions {
  double det_thresh = 0.5;          ///< gallery detections with score >= det_thresh are kept
  std::vector<int> topk = {1, 5, 10};
  bool cbgm = false;                ///< Context Bipartite Graph Matching re-scoring
  int cbgm_k1 = 10;                 ///< images holding the k1 highest similarities are re-scored
  int cbgm_k2 = 3;                  ///< query-image detections used as context (query box first)
};

/// k1 = 10, k2 = 3 on CUHK-SYSU; k1 = 30, k2 = 4 on PRW (SeqNet's settings).
inline void set_cbgm_defaults(SearchOptions& options, bool prw) {
  options.cbgm_k1 = prw ? 30 : 10;
  options.cbgm_k2 = prw ? 4 : 3;
}

struct QueryResult {
  double ap = 0.0;
  std::vector<uint8_t> hits;  ///< per SearchOptions::topk entry: 1 when a true positive is in the top k
  int64_t count_gt = 0;       ///< gallery images holding the query person
  int64_t count_tp = 0;       ///< of them, those where a detection matched the person
  int64_t num_detections = 0; ///< gallery detections ranked for this query
};

struct SearchMetrics {
  double mean_ap = 0.0;
  std::vector<int> topk;
  std::vector<double> topk_accuracy;  ///< mean hit per topk entry
  std::vector<QueryResult> queries;   ///< in SearchSplit::queries order
};

/// Scores `inputs` against `split`. Gallery entries equal to the query's own image are
/// skipped (loaders already leave it out). Gallery images listed twice are ranked once but
/// counted twice in count_gt (as the reference code does). A gallery image with several
/// ground-truth boxes for the query uses the first listed.
/// Ties in similarity: AP groups them (order-free); the per-image first match and the
/// top-k list break them by position (gallery order, then detection order).
/// Parallel over queries (ATen's intra-op thread pool). Throws std::invalid_argument on
/// inputs that do not fit the split (counts, shapes, feature sizes, missing CBGM context).
SearchMetrics evaluate_search(const data::SearchSplit& split, const SearchInputs& inputs,
                              const SearchOptions& options = {});

/// IoU threshold for a ground-truth box of integer size w x h: min(0.5, wh / ((w+10)(h+10))).
double small_box_iou_threshold(double w, double h);

/// Plain inter / union of two corner boxes (no +1 pixel terms), in double precision.
double box_iou(const data::Box& a, const data::Box& b);

}  // namespace psearch::evaluation
