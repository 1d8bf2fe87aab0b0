// The evaluation protocol, rule by rule, on hand-built cases whose results are worked out
// by hand in the comments. The Python oracle (tests/python/test_eval_oracle.py) compares
// the whole evaluator with an independent implementation on random data.
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "psearch/evaluation/average_precision.h"
#include "psearch/evaluation/detection.h"
#include "psearch/evaluation/search.h"

namespace ev = psearch::evaluation;
using psearch::data::Box;
using psearch::data::SearchSplit;

namespace {

// ---------------------------------------------------------------- average precision

/// The textbook definition, by sorting: at each distinct score (highest first) add
/// (R - R_prev) * P. Independent of the evaluator's bucketed O(n log P) version.
double ap_by_sorting(const std::vector<uint8_t>& labels, const std::vector<float>& scores) {
  std::vector<size_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  const double positives = std::count(labels.begin(), labels.end(), 1);
  if (positives == 0) return 0.0;
  double ap = 0, recall_prev = 0;
  int tp = 0;
  for (size_t r = 0; r < order.size(); ++r) {
    tp += labels[order[r]];
    if (r + 1 < order.size() && scores[order[r + 1]] == scores[order[r]]) continue;
    const double recall = tp / positives;
    ap += (recall - recall_prev) * tp / static_cast<double>(r + 1);
    recall_prev = recall;
  }
  return ap;
}

TEST(AveragePrecision, HandComputed) {
  // P = 1 at R = 1/2, P = 2/3 at R = 1.
  EXPECT_DOUBLE_EQ(ev::average_precision({1, 0, 1}, {0.9f, 0.8f, 0.7f}), 0.5 + 0.5 * 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(ev::average_precision({0, 1}, {0.9f, 0.1f}), 0.5);
  EXPECT_DOUBLE_EQ(ev::average_precision({1, 1, 0}, {0.2f, 0.3f, 0.1f}), 1.0);
  EXPECT_DOUBLE_EQ(ev::average_precision({0, 0}, {0.9f, 0.1f}), 0.0);  // no positive
  EXPECT_DOUBLE_EQ(ev::average_precision({}, {}), 0.0);
  EXPECT_THROW(ev::average_precision({1}, {0.5f, 0.4f}), std::invalid_argument);
}

TEST(AveragePrecision, TiesAreOneThreshold) {
  // The positive ties with a negative at 0.5: one threshold with tp = 1 of 3 items, so
  // AP = 1/3 whatever the order (ranking the positive first among the ties would give 1/2).
  EXPECT_DOUBLE_EQ(ev::average_precision({0, 1, 0}, {0.9f, 0.5f, 0.5f}), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(ev::average_precision({0, 0, 1}, {0.9f, 0.5f, 0.5f}), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(ev::average_precision({1, 0}, {0.5f, 0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(ev::average_precision({0, 1}, {0.5f, 0.5f}), 0.5);
}

TEST(AveragePrecision, MatchesSortingDefinitionOnRandomTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = 1 + rng() % 60;
    std::vector<uint8_t> labels(n);
    std::vector<float> scores(n);
    for (size_t i = 0; i < n; ++i) {
      labels[i] = rng() % 3 == 0;
      scores[i] = static_cast<float>(rng() % 8) / 8.0f;  // many ties
    }
    EXPECT_NEAR(ev::average_precision(labels, scores), ap_by_sorting(labels, scores), 1e-12) << "trial " << trial;
  }
}

// ---------------------------------------------------------------- search

TEST(SearchRules, SmallBoxIouThreshold) {
  EXPECT_DOUBLE_EQ(ev::small_box_iou_threshold(10, 10), 100.0 / 400.0);
  EXPECT_DOUBLE_EQ(ev::small_box_iou_threshold(10, 30), 300.0 / 800.0);
  EXPECT_DOUBLE_EQ(ev::small_box_iou_threshold(20, 50), 0.5);  // 1000 / 1800 > 0.5
  EXPECT_DOUBLE_EQ(ev::box_iou({0, 0, 10, 10}, {5, 0, 15, 10}), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(ev::box_iou({0, 0, 10, 10}, {20, 20, 30, 30}), 0.0);
}

/// A scene builder: images with detections (box, score, 2-D or 3-D feature), one query.
struct Scene {
  struct Det {
    Box box;
    float score;
    std::vector<float> feature;
  };
  SearchSplit split;
  std::vector<std::vector<Det>> dets;
  std::vector<std::vector<float>> query_features;
  std::vector<std::vector<Det>> context;  // CBGM: query-image detections per query

  int image(std::vector<Det> d = {}) {
    split.images.push_back({"img" + std::to_string(split.images.size()) + ".jpg", "", -1, {}});
    dets.push_back(std::move(d));
    return static_cast<int>(split.images.size()) - 1;
  }
  /// A query on `image` searching `gallery`, with the person at `positives`.
  size_t query(int image, std::vector<float> feature, std::vector<int32_t> gallery,
               std::vector<std::pair<int32_t, Box>> positives) {
    psearch::data::SearchQuery q;
    q.image = image;
    q.box = {0, 0, 10, 10};
    q.pid = "p" + std::to_string(split.queries.size());
    q.gallery = std::move(gallery);
    q.positives = std::move(positives);
    split.queries.push_back(q);
    query_features.push_back(std::move(feature));
    return split.queries.size() - 1;
  }

  ev::SearchInputs inputs() const {
    ev::SearchInputs in;
    const int64_t dim = static_cast<int64_t>(query_features.at(0).size());
    for (const auto& image : dets) in.gallery.push_back(to_detections(image, dim));
    std::vector<float> q;
    for (const auto& f : query_features) q.insert(q.end(), f.begin(), f.end());
    in.query_features = at::tensor(q).view({static_cast<int64_t>(query_features.size()), dim});
    for (const auto& c : context) {
      const auto d = to_detections(c, dim);
      in.query_context.push_back({d.boxes, d.features});
    }
    return in;
  }
  static psearch::modeling::Detections to_detections(const std::vector<Det>& image, int64_t dim) {
    std::vector<float> boxes, scores, feats;
    for (const auto& d : image) {
      boxes.insert(boxes.end(), d.box.begin(), d.box.end());
      scores.push_back(d.score);
      feats.insert(feats.end(), d.feature.begin(), d.feature.end());
    }
    const auto n = static_cast<int64_t>(image.size());
    psearch::modeling::Detections out;
    out.boxes = n ? at::tensor(boxes).view({n, 4}) : at::empty({0, 4});
    out.scores = n ? at::tensor(scores) : at::empty({0});
    out.features = n ? at::tensor(feats).view({n, dim}) : at::empty({0, dim});
    return out;
  }
  ev::SearchMetrics evaluate(ev::SearchOptions options = {}) const {
    return ev::evaluate_search(split, inputs(), options);
  }
};

// Unit-norm 2-D feature whose dot product with the query feature (1, 0) is `s`.
std::vector<float> sim(float s) { return {s, std::sqrt(std::max(0.0f, 1 - s * s))}; }

TEST(Search, SmallBoxThresholdAcceptsLowIoU) {
  // A 10 x 30 person: t = 300 / (20 * 40) = 0.375. The detection (0, 5, 10, 17) has IoU
  // 120 / 300 = 0.4: a true positive although below 0.5.
  Scene s;
  const int q = s.image();
  const int small = s.image({{{0, 5, 10, 17}, 0.9f, sim(0.8f)}});
  // A 100 x 200 person (t = 0.5): IoU 0.4 is not enough.
  const int large = s.image({{{0, 0, 100, 80}, 0.9f, sim(0.7f)}});
  s.query(q, {1, 0}, {small, large}, {{small, {0, 0, 10, 30}}, {large, {0, 0, 100, 200}}});
  const auto m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_gt, 2);
  EXPECT_EQ(m.queries[0].count_tp, 1);
  // The match ranks first: sklearn AP 1, times recall 1/2.
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 0.5);
  EXPECT_EQ(m.queries[0].hits, (std::vector<uint8_t>{1, 1, 1}));
}

TEST(Search, OnlyTheMostSimilarMatchPerImageCounts) {
  // Image a holds the person; two of its detections overlap it (sims 0.9, 0.8); image b's
  // detection (0.85) is someone else. Labels by similarity: 0.9 -> 1, 0.85 -> 0, 0.8 -> 0
  // (only the first match counts), so count_tp = 1 and AP = 1.
  Scene s;
  const int q = s.image();
  const int a = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.8f)}, {{0, 0, 50, 100}, 0.9f, sim(0.9f)}});
  const int b = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.85f)}});
  s.query(q, {1, 0}, {a, b}, {{a, {0, 0, 50, 100}}});
  auto m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_tp, 1);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0);

  // The most similar detection does not overlap; the next one does: labels 0.9 -> 0,
  // 0.85 -> 0, 0.8 -> 1: AP = 1/3.
  s.dets[a][1].box = {200, 0, 250, 100};
  m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_tp, 1);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0 / 3.0);
  EXPECT_EQ(m.queries[0].hits, (std::vector<uint8_t>{0, 1, 1}));
}

TEST(Search, ImagesWithoutDetectionsStillCountInCountGt) {
  // Three images hold the person: one matched, one with no detection at all, one whose only
  // detection is below det_thresh. count_gt = 3, count_tp = 1: AP = 1 * 1/3.
  Scene s;
  const int q = s.image();
  const int found = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.9f)}});
  const int empty = s.image();
  const int weak = s.image({{{0, 0, 50, 100}, 0.3f, sim(0.95f)}});
  const int other = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.1f)}});
  s.query(q, {1, 0}, {found, empty, weak, other},
          {{found, {0, 0, 50, 100}}, {empty, {0, 0, 50, 100}}, {weak, {0, 0, 50, 100}}});
  const auto m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_gt, 3);
  EXPECT_EQ(m.queries[0].count_tp, 1);
  EXPECT_EQ(m.queries[0].num_detections, 2);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.mean_ap, 1.0 / 3.0);
}

TEST(Search, QueryFrameIsNotCounted) {
  // A (wrong) gallery that lists the query frame, with a perfect detection of the person
  // there: the evaluator ignores it, so only image g counts (missed: AP 0).
  Scene s;
  const int q = s.image({{{0, 0, 10, 10}, 0.99f, sim(1.0f)}});
  const int g = s.image({{{300, 0, 350, 100}, 0.9f, sim(0.5f)}});
  s.query(q, {1, 0}, {q, g}, {{q, {0, 0, 10, 10}}, {g, {0, 0, 50, 100}}});
  const auto m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_gt, 1);
  EXPECT_EQ(m.queries[0].count_tp, 0);
  EXPECT_EQ(m.queries[0].num_detections, 1);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 0.0);
  EXPECT_EQ(m.queries[0].hits, (std::vector<uint8_t>{0, 0, 0}));
}

TEST(Search, TiedSimilaritiesAreOneThresholdInAp) {
  // The person's detection and a stranger's have the same feature: AP = 1/2 whichever comes
  // first; top-1 breaks the tie by gallery order.
  for (bool person_first : {true, false}) {
    Scene s;
    const int q = s.image();
    const int a = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.6f)}});
    const int b = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.6f)}});
    std::vector<int32_t> gallery = person_first ? std::vector<int32_t>{a, b} : std::vector<int32_t>{b, a};
    s.query(q, {1, 0}, gallery, {{a, {0, 0, 50, 100}}});
    const auto m = s.evaluate();
    EXPECT_DOUBLE_EQ(m.queries[0].ap, 0.5) << person_first;
    EXPECT_EQ(m.queries[0].hits[0], person_first ? 1 : 0);
  }
}

TEST(Search, TopKCanMissWhileCountTpIsPositive) {
  // Ten strangers are more similar than the matched person (11th): top-1/5/10 = 0, yet
  // count_tp = 1 and AP = 1/11.
  Scene s;
  const int q = s.image();
  std::vector<int32_t> gallery;
  for (int i = 0; i < 10; ++i) gallery.push_back(s.image({{{0, 0, 50, 100}, 0.9f, sim(0.9f - 0.01f * i)}}));
  const int person = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.5f)}});
  gallery.push_back(person);
  s.query(q, {1, 0}, gallery, {{person, {0, 0, 50, 100}}});
  const auto m = s.evaluate();
  EXPECT_EQ(m.queries[0].count_tp, 1);
  EXPECT_NEAR(m.queries[0].ap, 1.0 / 11.0, 1e-12);
  EXPECT_EQ(m.queries[0].hits, (std::vector<uint8_t>{0, 0, 0}));
  ev::SearchOptions options;
  options.topk = {1, 11};
  EXPECT_EQ(s.evaluate(options).queries[0].hits, (std::vector<uint8_t>{0, 1}));
}

TEST(Search, DetThreshFiltersGalleryDetections) {
  Scene s;
  const int q = s.image();
  const int a = s.image({{{0, 0, 50, 100}, 0.4f, sim(0.9f)}});
  const int b = s.image({{{0, 0, 50, 100}, 0.5f, sim(0.2f)}});  // exactly at the threshold: kept
  s.query(q, {1, 0}, {a, b}, {{a, {0, 0, 50, 100}}, {b, {0, 0, 50, 100}}});
  ev::SearchOptions options;
  auto m = s.evaluate(options);  // det_thresh 0.5: only b's detection
  EXPECT_EQ(m.queries[0].num_detections, 1);
  EXPECT_EQ(m.queries[0].count_tp, 1);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 0.5);
  options.det_thresh = 0.3;
  m = s.evaluate(options);
  EXPECT_EQ(m.queries[0].count_tp, 2);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0);
}

TEST(Search, MeanOverQueriesAndDensePath) {
  // Two queries over a gallery of every other image (the blocked matrix-product path) and
  // one over a single image (the per-image path); the mean is over all three.
  Scene s;
  std::vector<int> images;
  for (int i = 0; i < 8; ++i) images.push_back(s.image({{{0, 0, 50, 100}, 0.9f, sim(0.1f * i)}}));
  const auto all_but = [&](int skip) {
    std::vector<int32_t> g;
    for (int i : images)
      if (i != skip) g.push_back(i);
    return g;
  };
  s.query(0, {1, 0}, all_but(0), {{7, {0, 0, 50, 100}}});  // most similar: AP 1
  s.query(1, {1, 0}, all_but(1), {{2, {0, 0, 50, 100}}});  // 6th of 7: AP 1/6
  s.query(2, {1, 0}, {3}, {{3, {0, 0, 50, 100}}});         // alone: AP 1
  const auto m = s.evaluate();
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0);
  EXPECT_NEAR(m.queries[1].ap, 1.0 / 6.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.queries[2].ap, 1.0);
  EXPECT_NEAR(m.mean_ap, (2.0 + 1.0 / 6.0) / 3.0, 1e-12);
  EXPECT_NEAR(m.topk_accuracy[0], 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.topk_accuracy[1], 2.0 / 3.0, 1e-12);  // rank 6 > 5
  EXPECT_NEAR(m.topk_accuracy[2], 1.0, 1e-12);
}

TEST(Search, CbgmChangesTheRanking) {
  // Query q = (1, 0, 0) with a companion c = (0, 1, 0) on the query image.
  // Image A holds the person A1 (sim 0.6) next to the companion A2 (0.9 with c).
  // Image B holds a stranger B1 with sim 0.7; image C one C1 that looks like the companion.
  // Without CBGM: B1 (0.7) > A1 (0.6): top-1 misses, AP = 1/2.
  // With CBGM (k2 = 2): A's graph [[0.6, 0], [0, 0.9]] matches q-A1 and c-A2, so A1 becomes
  // max(0.6, 0.9) = 0.9 > 0.7. B's single detection is matched to q (0.7 > 0): unchanged.
  // C1's only detection goes to c (0.995 > 0.1), so q is unmatched and C1 keeps 0.1 (were it
  // raised to 0.995 it would take rank 1).
  Scene s;
  const int q = s.image();
  const int a = s.image({{{0, 0, 50, 100}, 0.9f, {0.6f, 0.0f, 0.8f}}, {{60, 0, 110, 100}, 0.9f, {0.0f, 0.9f, 0.43589f}}});
  const int b = s.image({{{0, 0, 50, 100}, 0.9f, {0.7f, 0.0f, 0.71414f}}});
  const int c = s.image({{{0, 0, 50, 100}, 0.9f, {0.1f, 0.995f, 0.0f}}});
  s.query(q, {1, 0, 0}, {a, b, c}, {{a, {0, 0, 50, 100}}});
  s.context = {{{{0, 0, 10, 10}, 1.0f, {1, 0, 0}}, {{20, 0, 30, 10}, 0.9f, {0, 1, 0}}}};
  ev::SearchOptions options;
  auto m = s.evaluate(options);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 0.5);
  EXPECT_EQ(m.queries[0].hits[0], 0);
  options.cbgm = true;
  options.cbgm_k1 = 10;
  options.cbgm_k2 = 2;
  m = s.evaluate(options);
  EXPECT_DOUBLE_EQ(m.queries[0].ap, 1.0);
  EXPECT_EQ(m.queries[0].hits[0], 1);
  // k1 = 1 re-scores only the image of the single highest similarity (B): A1 stays 0.6.
  options.cbgm_k1 = 1;
  m = s.evaluate(options);
  EXPECT_EQ(m.queries[0].hits[0], 0);
  // k2 = 1: no context, each graph is the query alone; A1's best edge is its own 0.6.
  options.cbgm_k1 = 10;
  options.cbgm_k2 = 1;
  m = s.evaluate(options);
  EXPECT_EQ(m.queries[0].hits[0], 0);
}

TEST(Search, RejectsInputsThatDoNotFit) {
  Scene s;
  const int q = s.image();
  const int a = s.image({{{0, 0, 50, 100}, 0.9f, sim(0.6f)}});
  s.query(q, {1, 0}, {a}, {{a, {0, 0, 50, 100}}});
  auto in = s.inputs();
  in.gallery.pop_back();
  EXPECT_THROW(ev::evaluate_search(s.split, in, {}), std::invalid_argument);
  in = s.inputs();
  in.query_features = at::empty({1, 3});
  EXPECT_THROW(ev::evaluate_search(s.split, in, {}), std::invalid_argument);
  in = s.inputs();
  in.gallery[1].scores = at::empty({2});
  EXPECT_THROW(ev::evaluate_search(s.split, in, {}), std::invalid_argument);
  ev::SearchOptions cbgm;
  cbgm.cbgm = true;  // no query context given
  EXPECT_THROW(ev::evaluate_search(s.split, s.inputs(), cbgm), std::invalid_argument);
  s.context = {{{{50, 50, 60, 60}, 1.0f, {1, 0}}}};  // first box is not the query box
  EXPECT_THROW(ev::evaluate_search(s.split, s.inputs(), cbgm), std::invalid_argument);
  s.split.queries[0].gallery.push_back(7);  // no such image
  EXPECT_THROW(ev::evaluate_search(s.split, s.inputs(), {}), std::invalid_argument);
}

// ---------------------------------------------------------------- detection

struct DetScene {
  std::vector<psearch::data::ImageRecord> images;
  std::vector<psearch::modeling::Detections> dets;
  void add(std::vector<std::pair<Box, int64_t>> gts, std::vector<std::pair<Box, float>> d) {
    psearch::data::ImageRecord r;
    r.name = "img" + std::to_string(images.size());
    for (const auto& [box, pid] : gts) r.persons.push_back({box, pid, false});
    images.push_back(r);
    std::vector<Scene::Det> ds;
    for (const auto& [box, score] : d) ds.push_back({box, score, {0.0f}});
    dets.push_back(Scene::to_detections(ds, 1));
  }
};

TEST(Detection, HandComputedApAndRecall) {
  DetScene s;
  // Image 0: persons G1 (labeled) and G2. d1 hits G1 exactly (0.9); d2 overlaps G1 too
  // (IoU 0.82, 0.8) but G1's best partner is d1, so d2 is a false positive; d3 hits G2 (0.3).
  s.add({{{0, 0, 10, 10}, 5}, {{20, 0, 30, 10}, psearch::data::kUnlabeled}},
        {{{0, 0, 10, 10}, 0.9f}, {{1, 0, 11, 10}, 0.8f}, {{20, 0, 30, 10}, 0.3f}});
  // Image 1: person G3, detected only below det_thresh (0.005); d4 elsewhere (0.7).
  s.add({{{0, 0, 10, 10}, psearch::data::kUnlabeled}}, {{{50, 50, 60, 60}, 0.7f}, {{0, 0, 10, 10}, 0.005f}});
  // Image 2: nobody; d5 (0.95) is a false positive.
  s.add({}, {{{0, 0, 10, 10}, 0.95f}});
  // Ranking: d5 0 | d1 1 | d2 0 | d4 0 | d3 1. count_gt 3, count_tp 2, recall 2/3.
  // sklearn AP: 1/2 * P(0.9) + 1/2 * P(0.3) = 1/2 * 1/2 + 1/2 * 2/5 = 0.45; AP = 0.45 * 2/3.
  auto m = ev::evaluate_detection(s.images, s.dets);
  EXPECT_EQ(m.count_gt, 3);
  EXPECT_EQ(m.count_tp, 2);
  EXPECT_EQ(m.num_detections, 5);
  EXPECT_DOUBLE_EQ(m.recall, 2.0 / 3.0);
  EXPECT_NEAR(m.ap, 0.3, 1e-12);
  // The curve's step area is the AP.
  double area = 0, prev = 0;
  for (size_t k = 0; k < m.curve_recall.size(); ++k) {
    area += (m.curve_recall[k] - prev) * m.curve_precision[k];
    prev = m.curve_recall[k];
  }
  EXPECT_NEAR(area, m.ap, 1e-12);
  EXPECT_EQ(m.curve_threshold.size(), 5u);
  EXPECT_FLOAT_EQ(m.curve_threshold.front(), 0.95f);

  // labeled_only: only G1 counts; images 1 and 2 have no labeled person and drop out with
  // their detections. Ranking d1 1 | d2 0 | d3 0: AP 1, recall 1.
  ev::DetectionOptions labeled;
  labeled.labeled_only = true;
  m = ev::evaluate_detection(s.images, s.dets, labeled);
  EXPECT_EQ(m.count_gt, 1);
  EXPECT_EQ(m.count_tp, 1);
  EXPECT_EQ(m.num_detections, 3);
  EXPECT_DOUBLE_EQ(m.ap, 1.0);

  // det_thresh 0.001 admits the 0.005 detection of G3: count_tp 3.
  ev::DetectionOptions low;
  low.det_thresh = 0.001;
  EXPECT_EQ(ev::evaluate_detection(s.images, s.dets, low).count_tp, 3);
}

TEST(Detection, MutualBestIouVersusGreedyByScore) {
  // One person; d_a (score 0.9) overlaps with IoU 0.6, d_b (0.5) with IoU 0.9.
  // Reference (mutual best IoU): d_b is the match -> ranking 0, 1 -> sklearn AP 1/2.
  // Greedy by score: d_a takes the person -> ranking 1, 0 -> AP 1.
  DetScene s;
  s.add({{{0, 0, 10, 10}, 1}}, {{{0, 0, 10, 6}, 0.9f}, {{0, 0, 10, 9}, 0.5f}});
  auto m = ev::evaluate_detection(s.images, s.dets);
  EXPECT_EQ(m.count_tp, 1);
  EXPECT_DOUBLE_EQ(m.ap, 0.5);
  ev::DetectionOptions greedy;
  greedy.matching = ev::DetectionMatching::kGreedyByScore;
  m = ev::evaluate_detection(s.images, s.dets, greedy);
  EXPECT_EQ(m.count_tp, 1);
  EXPECT_DOUBLE_EQ(m.ap, 1.0);
}

}  // namespace
