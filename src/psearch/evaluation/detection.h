#pragma once
/// Detection metrics of the person-search benchmarks: average precision and recall of the
/// gallery detections at IoU 0.5 over every test image.
#include <cstdint>
#include <vector>

#include "psearch/data/dataset.h"
#include "psearch/evaluation/detections.h"

namespace psearch::evaluation {

enum class DetectionMatching {
  /// The reference code (OIM, NAE, SeqNet eval_detection): a detection and a ground-truth box
  /// match when each is the other's highest-IoU partner in the image (first on ties) and
  /// their IoU reaches the threshold. One-to-one, independent of scores.
  kMutualBestIoU,
  /// Greedy by score (COCO-style): detections in descending score order each take the
  /// unmatched ground-truth box of highest IoU, if that IoU reaches the threshold.
  kGreedyByScore,
};

struct DetectionOptions {
  double det_thresh = 0.01;  ///< detections with score >= det_thresh are evaluated
  double iou_thresh = 0.5;
  /// Only ground-truth boxes with an identity count; images without any are skipped
  /// entirely (their detections are not counted as false positives), as in the reference.
  bool labeled_only = false;
  DetectionMatching matching = DetectionMatching::kMutualBestIoU;
};

struct DetectionMetrics {
  double ap = 0.0;      ///< average_precision(labels, scores) * recall
  double recall = 0.0;  ///< count_tp / count_gt
  int64_t count_gt = 0, count_tp = 0, num_detections = 0;
  /// Precision-recall curve at every distinct score, highest score first; recall is
  /// relative to count_gt, so the area under the step curve is `ap`.
  std::vector<double> curve_precision, curve_recall, curve_threshold;
};

/// Evaluates `detections` (one entry per image, in order) against the persons of `images`.
/// Throws std::invalid_argument when the counts or shapes do not fit.
DetectionMetrics evaluate_detection(const std::vector<data::ImageRecord>& images,
                                    const std::vector<modeling::Detections>& detections,
                                    const DetectionOptions& options = {});

}  // namespace psearch::evaluation
