#pragma once
/// Running a person-search model over a test split: the gallery path on every image and
/// the query path on every query, giving what the evaluator scores.
#include "psearch/data/dataset.h"
#include "psearch/evaluation/detections.h"
#include "psearch/modeling/search_model.h"

namespace psearch::engine {

struct RunOptions {
  /// Embed the annotated boxes of each gallery image (score 1) instead of detecting: the
  /// re-identification-only setting, and the only one for models without a detector.
  bool ground_truth_boxes = false;
  /// Show a progress bar on stderr.
  bool progress = true;
};

/// Runs `model` on every image of `split` and every query. Each image is decoded once.
/// Throws std::runtime_error naming the image when one cannot be read.
evaluation::SearchInputs run_search_model(modeling::SearchModel& model, const data::SearchSplit& split,
                                          const RunOptions& options);

}  // namespace psearch::engine
