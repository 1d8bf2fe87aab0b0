#pragma once
/// Running a person-search model over a test split: the gallery path on every image and
/// the query path on every query, giving what the evaluator scores.
#include <cstdint>

#include "psearch/data/dataset.h"
#include "psearch/evaluation/detections.h"
#include "psearch/modeling/search_model.h"

namespace psearch::engine {

struct RunOptions {
  /// Embed the annotated boxes of each gallery image (score 1) instead of detecting: the
  /// re-identification-only setting, and the only one for models without a detector.
  bool ground_truth_boxes = false;
  /// Images per gallery forward pass (config inference.batch_size).
  int64_t batch_size = 1;
  /// Also fill SearchInputs::query_context (needed for CBGM): the query box and its
  /// embedding first, then the query image's gallery entries (detections, or annotated
  /// boxes with ground_truth_boxes) most confident first, leaving out those that overlap
  /// the query box by IoU > context_overlap (the query person itself; SeqNet puts the query
  /// box through the test NMS with its detections, which has this effect at its NMS
  /// threshold 0.4).
  bool query_context = false;
  double context_overlap = 0.4;
  /// Show a progress bar on stderr.
  bool progress = true;
  /// Evaluation sharded over the ranks of a data-parallel job (docs/distributed.md): this
  /// process runs the batches b with b % shards == shard, then every rank receives the
  /// whole result through the installed job's collectives (distributed/collectives.h), in
  /// the order one process would produce it.
  int shard = 0, shards = 1;
};

/// Runs `model` on every image of `split` and every query. Each image is decoded once.
/// Throws std::runtime_error naming the image when one cannot be read.
evaluation::SearchInputs run_search_model(modeling::SearchModel& model, const data::SearchSplit& split,
                                          const RunOptions& options);

}  // namespace psearch::engine
