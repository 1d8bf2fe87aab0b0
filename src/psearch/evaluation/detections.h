#pragma once
/// What a detector and re-id model produce for a test split, in the form the evaluator
/// reads: detections with scores and embeddings per image (modeling::Detections, the
/// models' own output type), one embedding per query.
#include <ATen/core/Tensor.h>

#include <vector>

#include "psearch/data/dataset.h"
#include "psearch/modeling/detections.h"

namespace psearch::evaluation {

/// Detections on a query image for Context Bipartite Graph Matching: row 0 is the query box
/// itself, the other rows the image's other detections, most confident first.
struct QueryContext {
  at::Tensor boxes;     ///< [M, 4], M >= 1
  at::Tensor features;  ///< [M, D]
};

/// Everything the search evaluation needs besides the split.
struct SearchInputs {
  std::vector<modeling::Detections> gallery;  ///< one entry per SearchSplit::images, same order
  at::Tensor query_features;             ///< [Q, D], one row per SearchSplit::queries
  std::vector<QueryContext> query_context;  ///< per query; needed only for CBGM
};

/// Throws std::invalid_argument unless `detections` has one entry per image of `images`
/// and every entry has boxes [N, 4], scores [N] and (when `need_features`) features [N, D]
/// with one D throughout; the message names the image. Returns D (0 when not checked).
int64_t check_image_detections(const std::vector<data::ImageRecord>& images,
                               const std::vector<modeling::Detections>& detections, bool need_features);

}  // namespace psearch::evaluation
