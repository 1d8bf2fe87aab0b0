#include "psearch/evaluation/detection.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "psearch/evaluation/average_precision.h"
#include "psearch/evaluation/search.h"

namespace psearch::evaluation {
namespace {

/// Marks the true positives among `dets` (kept detections of one image) against `gts`.
/// Returns the number of matches; `is_tp[j]` is set for matched detection j.
int64_t match_image(const std::vector<data::Box>& gts, const std::vector<data::Box>& dets,
                    const std::vector<float>& scores, const DetectionOptions& options, std::vector<uint8_t>& is_tp) {
  const size_t num_gt = gts.size(), num_det = dets.size();
  is_tp.assign(num_det, 0);
  if (num_gt == 0 || num_det == 0) return 0;
  // IoUs are kept in float32, as the reference code stores them.
  std::vector<float> iou(num_gt * num_det);
  for (size_t i = 0; i < num_gt; ++i)
    for (size_t j = 0; j < num_det; ++j) iou[i * num_det + j] = static_cast<float>(box_iou(gts[i], dets[j]));
  int64_t matched = 0;
  if (options.matching == DetectionMatching::kMutualBestIoU) {
    // best_gt[j]: first gt of highest IoU with detection j; best_det[i]: likewise for gt i.
    std::vector<size_t> best_gt(num_det, 0), best_det(num_gt, 0);
    for (size_t i = 0; i < num_gt; ++i)
      for (size_t j = 0; j < num_det; ++j) {
        const float v = iou[i * num_det + j];
        if (v > iou[best_gt[j] * num_det + j]) best_gt[j] = i;
        if (v > iou[i * num_det + best_det[i]]) best_det[i] = j;
      }
    for (size_t i = 0; i < num_gt; ++i) {
      const size_t j = best_det[i];
      if (best_gt[j] == i && iou[i * num_det + j] >= options.iou_thresh) {
        is_tp[j] = 1;
        ++matched;
      }
    }
  } else {
    std::vector<size_t> order(num_det);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    std::vector<uint8_t> taken(num_gt, 0);
    for (size_t j : order) {
      size_t best = num_gt;
      float best_iou = -1.0f;
      for (size_t i = 0; i < num_gt; ++i)
        if (!taken[i] && iou[i * num_det + j] >= options.iou_thresh && iou[i * num_det + j] > best_iou) {
          best = i;
          best_iou = iou[i * num_det + j];
        }
      if (best < num_gt) {
        taken[best] = 1;
        is_tp[j] = 1;
        ++matched;
      }
    }
  }
  return matched;
}

}  // namespace

DetectionMetrics evaluate_detection(const std::vector<data::ImageRecord>& images,
                                    const std::vector<modeling::Detections>& detections,
                                    const DetectionOptions& options) {
  check_image_detections(images, detections, false);
  DetectionMetrics m;
  std::vector<uint8_t> labels, is_tp;
  std::vector<float> all_scores;
  std::vector<data::Box> gts, dets;
  std::vector<float> scores;
  for (size_t k = 0; k < images.size(); ++k) {
    gts.clear();
    for (const auto& p : images[k].persons)
      if (!options.labeled_only || p.pid != data::kUnlabeled) gts.push_back(p.box);
    if (options.labeled_only && gts.empty()) continue;  // the image is left out entirely
    const at::Tensor b = detections[k].boxes.to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor s = detections[k].scores.to(at::kCPU, at::kFloat).contiguous();
    const float* bp = b.data_ptr<float>();
    const float* sp = s.data_ptr<float>();
    dets.clear();
    scores.clear();
    const float thresh = static_cast<float>(options.det_thresh);  // compared in float32, as numpy does
    for (int64_t j = 0; j < s.size(0); ++j)
      if (sp[j] >= thresh) {
        dets.push_back({bp[4 * j], bp[4 * j + 1], bp[4 * j + 2], bp[4 * j + 3]});
        scores.push_back(sp[j]);
      }
    m.count_gt += static_cast<int64_t>(gts.size());
    m.count_tp += match_image(gts, dets, scores, options, is_tp);
    labels.insert(labels.end(), is_tp.begin(), is_tp.end());
    all_scores.insert(all_scores.end(), scores.begin(), scores.end());
  }
  m.num_detections = static_cast<int64_t>(all_scores.size());
  m.recall = m.count_gt > 0 ? static_cast<double>(m.count_tp) / static_cast<double>(m.count_gt) : 0.0;
  m.ap = average_precision(labels, all_scores) * m.recall;

  // The curve: precision and recall at every distinct score, highest first.
  std::vector<size_t> order(all_scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return all_scores[a] > all_scores[b]; });
  int64_t tp = 0, seen = 0;
  for (size_t r = 0; r < order.size(); ++r) {
    tp += labels[order[r]];
    ++seen;
    if (r + 1 < order.size() && all_scores[order[r + 1]] == all_scores[order[r]]) continue;
    m.curve_threshold.push_back(all_scores[order[r]]);
    m.curve_precision.push_back(static_cast<double>(tp) / static_cast<double>(seen));
    m.curve_recall.push_back(m.count_gt > 0 ? static_cast<double>(tp) / static_cast<double>(m.count_gt) : 0.0);
  }
  return m;
}

}  // namespace psearch::evaluation
