#include "psearch/evaluation/search.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "psearch/evaluation/average_precision.h"
#include "psearch/evaluation/cbgm.h"

namespace psearch::evaluation {

double small_box_iou_threshold(double w, double h) { return std::min(0.5, (w * h) / ((w + 10.0) * (h + 10.0))); }

double box_iou(const data::Box& a, const data::Box& b) {
  const double x1 = std::max<double>(a[0], b[0]), y1 = std::max<double>(a[1], b[1]);
  const double x2 = std::min<double>(a[2], b[2]), y2 = std::min<double>(a[3], b[3]);
  const double inter = std::max(0.0, x2 - x1) * std::max(0.0, y2 - y1);
  const double area_a = (double(a[2]) - a[0]) * (double(a[3]) - a[1]);
  const double area_b = (double(b[2]) - b[0]) * (double(b[3]) - b[1]);
  return inter / (area_a + area_b - inter);
}

namespace {

float dot(const float* a, const float* b, int64_t d) {
  // Eight independent partial sums let the compiler vectorise without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

at::Tensor as_float_matrix(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat).contiguous(); }

/// Kept gallery detections of every image, concatenated.
struct Gallery {
  int64_t dim = 0;
  std::vector<int64_t> start, count;  // per image: first row in `features`/`boxes`, number kept
  at::Tensor features;                // [total, dim] float32 contiguous
  std::vector<data::Box> boxes;       // [total]
  int64_t total() const { return static_cast<int64_t>(boxes.size()); }
};

Gallery keep_detections(const SearchInputs& inputs, double det_thresh, int64_t dim) {
  Gallery g;
  g.dim = dim;
  const size_t num_images = inputs.gallery.size();
  g.start.resize(num_images);
  g.count.resize(num_images);
  std::vector<std::vector<int64_t>> kept(num_images);
  std::vector<at::Tensor> feats(num_images);
  for (size_t i = 0; i < num_images; ++i) {
    const auto& d = inputs.gallery[i];
    // Scores and threshold compare in float32, as numpy compares a float32 array with a
    // Python float (a score of exactly float32(0.01) is kept at det_thresh 0.01).
    const at::Tensor scores = d.scores.to(at::kCPU, at::kFloat).contiguous();
    const float* s = scores.data_ptr<float>();
    const float thresh = static_cast<float>(det_thresh);
    for (int64_t j = 0; j < scores.size(0); ++j)
      if (s[j] >= thresh) kept[i].push_back(j);
    g.start[i] = g.total();
    g.count[i] = static_cast<int64_t>(kept[i].size());
    if (kept[i].empty()) continue;
    const at::Tensor boxes = as_float_matrix(d.boxes);
    const float* b = boxes.data_ptr<float>();
    for (int64_t j : kept[i]) g.boxes.push_back({b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]});
  }
  g.features = at::empty({g.total(), dim}, at::kFloat);
  float* out = g.features.data_ptr<float>();
  for (size_t i = 0; i < num_images; ++i) {
    if (kept[i].empty()) continue;
    const at::Tensor f = as_float_matrix(inputs.gallery[i].features);
    const float* src = f.data_ptr<float>();
    for (size_t k = 0; k < kept[i].size(); ++k)
      std::copy_n(src + kept[i][k] * dim, dim, out + (g.start[i] + static_cast<int64_t>(k)) * dim);
  }
  return g;
}

/// One gallery image with kept detections, as ranked for one query.
struct Entry {
  int32_t image;
  int64_t pooled;  // first index in the pooled similarity list
  int64_t count;
  int64_t row;     // first row in Gallery::features
};

/// Scratch space of one worker thread.
struct Workspace {
  explicit Workspace(size_t num_images) : positive_of(num_images, -1), seen(num_images, 0) {}
  std::vector<int32_t> positive_of;  // image -> index into query.positives, -1 if none
  std::vector<uint8_t> seen;
  std::vector<int32_t> touched;
  std::vector<Entry> entries;
  std::vector<float> sims;
  std::vector<uint8_t> labels;
  std::vector<int64_t> order;
};

/// Context Bipartite Graph Matching: the images holding the k1 highest similarities are
/// matched, as bipartite graphs, against the first k2 detections of the query image; when the
/// query box (row 0) is matched, its partner's similarity becomes the largest matched weight.
void apply_cbgm(const Gallery& g, const float* context, int64_t context_rows, const SearchOptions& options,
                Workspace& ws) {
  const int64_t n = static_cast<int64_t>(ws.sims.size());
  const int64_t k1 = std::min<int64_t>(options.cbgm_k1, n);
  if (k1 <= 0) return;
  auto& top = ws.order;
  top.resize(n);
  std::iota(top.begin(), top.end(), 0);
  std::nth_element(top.begin(), top.begin() + (k1 - 1), top.end(),
                   [&](int64_t a, int64_t b) { return ws.sims[a] > ws.sims[b] || (ws.sims[a] == ws.sims[b] && a < b); });
  top.resize(k1);
  std::vector<size_t> chosen;
  for (int64_t p : top) {
    // Entries are sorted by their pooled start; find the one holding p.
    const auto it = std::upper_bound(ws.entries.begin(), ws.entries.end(), p,
                                     [](int64_t v, const Entry& e) { return v < e.pooled; });
    chosen.push_back(static_cast<size_t>(it - ws.entries.begin()) - 1);
  }
  std::sort(chosen.begin(), chosen.end());
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());

  const int64_t rows = std::min<int64_t>(options.cbgm_k2, context_rows);
  const int64_t dim = g.dim;
  const float* gf = g.features.data_ptr<float>();
  for (size_t c : chosen) {
    const Entry& e = ws.entries[c];
    const int64_t cols = e.count;
    std::vector<float> weight(rows * cols);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) weight[i * cols + j] = dot(context + i * dim, gf + (e.row + j) * dim, dim);
    const CbgmMatch match = cbgm_match(weight, rows, cols);
    if (match.column >= 0) ws.sims[e.pooled + match.column] = match.similarity;
  }
}

QueryResult evaluate_query(const data::SearchSplit& split, const std::vector<at::Tensor>& contexts, const Gallery& g,
                           const at::Tensor& query_features, size_t q, const float* dense_row,
                           const SearchOptions& options, Workspace& ws) {
  const auto& query = split.queries[q];
  const int64_t dim = g.dim;
  const float* qf = query_features.data_ptr<float>() + static_cast<int64_t>(q) * dim;
  const float* gf = g.features.data_ptr<float>();
  for (size_t k = 0; k < query.positives.size(); ++k) {
    const int32_t image = query.positives[k].first;
    if (ws.positive_of[image] < 0) ws.positive_of[image] = static_cast<int32_t>(k);
  }

  QueryResult result;
  ws.entries.clear();
  ws.sims.clear();
  ws.touched.clear();
  for (int32_t image : query.gallery) {
    if (image == query.image) continue;  // the query frame is never part of its own gallery
    if (ws.positive_of[image] >= 0) ++result.count_gt;
    if (ws.seen[image]) continue;
    ws.seen[image] = 1;
    ws.touched.push_back(image);
    const int64_t n = g.count[image];
    if (n == 0) continue;
    const int64_t row = g.start[image];
    ws.entries.push_back({image, static_cast<int64_t>(ws.sims.size()), n, row});
    if (dense_row) {
      ws.sims.insert(ws.sims.end(), dense_row + row, dense_row + row + n);
    } else {
      for (int64_t j = 0; j < n; ++j) ws.sims.push_back(dot(qf, gf + (row + j) * dim, dim));
    }
  }
  for (int32_t image : ws.touched) ws.seen[image] = 0;
  const int64_t n = static_cast<int64_t>(ws.sims.size());
  result.num_detections = n;

  if (options.cbgm && n > 0) {
    const at::Tensor& f = contexts[q];
    apply_cbgm(g, f.data_ptr<float>(), f.size(0), options, ws);
  }

  // Labels: in each image holding the person, the most similar detection that overlaps the
  // ground truth enough is the one true positive.
  ws.labels.assign(n, 0);
  for (const Entry& e : ws.entries) {
    const int32_t k = ws.positive_of[e.image];
    if (k < 0) continue;
    const data::Box& gt = query.positives[k].second;
    const double t = small_box_iou_threshold(double(gt[2]) - gt[0], double(gt[3]) - gt[1]);
    auto& order = ws.order;
    order.resize(e.count);
    std::iota(order.begin(), order.end(), 0);
    const float* s = ws.sims.data() + e.pooled;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
    for (int64_t j : order) {
      if (box_iou(g.boxes[e.row + j], gt) >= t) {
        ws.labels[e.pooled + j] = 1;
        ++result.count_tp;
        break;
      }
    }
  }
  for (const auto& p : query.positives) ws.positive_of[p.first] = -1;

  if (result.count_tp > 0)
    result.ap = average_precision(ws.labels.data(), ws.sims.data(), static_cast<size_t>(n)) *
                static_cast<double>(result.count_tp) / static_cast<double>(result.count_gt);

  // Top-k over all gallery detections: keep the best kmax, ties by position.
  const int kmax = options.topk.empty() ? 0 : *std::max_element(options.topk.begin(), options.topk.end());
  std::vector<int64_t> best;
  const auto before = [&](int64_t a, int64_t b) { return ws.sims[a] > ws.sims[b] || (ws.sims[a] == ws.sims[b] && a < b); };
  for (int64_t i = 0; i < n && kmax > 0; ++i) {
    if (static_cast<int>(best.size()) == kmax && !before(i, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, before), i);
    if (static_cast<int>(best.size()) > kmax) best.pop_back();
  }
  for (int k : options.topk) {
    uint8_t hit = 0;
    for (int r = 0; r < k && r < static_cast<int>(best.size()); ++r) hit |= ws.labels[best[r]];
    result.hits.push_back(hit);
  }
  return result;
}

void check_split(const data::SearchSplit& split, const SearchInputs& inputs, const SearchOptions& options,
                 int64_t dim) {
  const int64_t num_images = static_cast<int64_t>(split.images.size());
  const auto name = [&](size_t q) {
    const auto& query = split.queries[q];
    return "query " + std::to_string(q) + " (" +
           (query.image >= 0 && query.image < num_images ? split.images[query.image].name : std::string("?")) + ")";
  };
  for (size_t q = 0; q < split.queries.size(); ++q) {
    const auto& query = split.queries[q];
    if (query.image < 0 || query.image >= num_images)
      throw std::invalid_argument(name(q) + ": image index " + std::to_string(query.image) + " out of range");
    for (int32_t i : query.gallery)
      if (i < 0 || i >= num_images)
        throw std::invalid_argument(name(q) + ": gallery image index " + std::to_string(i) + " out of range");
    for (const auto& p : query.positives)
      if (p.first < 0 || p.first >= num_images)
        throw std::invalid_argument(name(q) + ": positive image index " + std::to_string(p.first) + " out of range");
  }
  for (int k : options.topk)
    if (k < 1) throw std::invalid_argument("top-k values must be >= 1, got " + std::to_string(k));
  const auto& qf = inputs.query_features;
  if (!qf.defined() || qf.dim() != 2 || qf.size(0) != static_cast<int64_t>(split.queries.size()) ||
      (dim > 0 && qf.size(1) != dim))
    throw std::invalid_argument("query features must have shape [" + std::to_string(split.queries.size()) + ", " +
                                (dim > 0 ? std::to_string(dim) : std::string("D")) + "]");
  if (!options.cbgm) return;
  if (options.cbgm_k1 < 1 || options.cbgm_k2 < 1) throw std::invalid_argument("CBGM k1 and k2 must be >= 1");
  if (inputs.query_context.size() != split.queries.size())
    throw std::invalid_argument("CBGM needs the query-image detections of every query: got " +
                                std::to_string(inputs.query_context.size()) + " for " +
                                std::to_string(split.queries.size()) + " queries");
  for (size_t q = 0; q < split.queries.size(); ++q) {
    const auto& c = inputs.query_context[q];
    if (!c.boxes.defined() || c.boxes.dim() != 2 || c.boxes.size(1) != 4 || c.boxes.size(0) < 1)
      throw std::invalid_argument(name(q) + ": query-image detections need boxes [M, 4] with M >= 1");
    if (!c.features.defined() || c.features.dim() != 2 || c.features.size(0) != c.boxes.size(0) ||
        c.features.size(1) != qf.size(1))
      throw std::invalid_argument(name(q) + ": query-image detection features must have shape [" +
                                  std::to_string(c.boxes.size(0)) + ", " + std::to_string(qf.size(1)) + "]");
    const at::Tensor first = c.boxes[0].to(at::kCPU, at::kDouble).contiguous();
    const double* b = first.data_ptr<double>();
    const auto& box = split.queries[q].box;
    for (int k = 0; k < 4; ++k)
      if (!(std::abs(b[k] - box[k]) <= 1.0))
        throw std::invalid_argument(name(q) + ": the first query-image detection must be the query box (" +
                                    std::to_string(box[0]) + ", " + std::to_string(box[1]) + ", " +
                                    std::to_string(box[2]) + ", " + std::to_string(box[3]) + ")");
  }
}

}  // namespace

SearchMetrics evaluate_search(const data::SearchSplit& split, const SearchInputs& inputs,
                              const SearchOptions& options) {
  int64_t dim = check_image_detections(split.images, inputs.gallery, true);
  if (dim == 0 && inputs.query_features.defined() && inputs.query_features.dim() == 2)
    dim = inputs.query_features.size(1);
  check_split(split, inputs, options, dim);

  const Gallery g = keep_detections(inputs, options.det_thresh, dim);
  const at::Tensor query_features = as_float_matrix(inputs.query_features);
  const size_t num_queries = split.queries.size();
  const size_t num_images = split.images.size();
  std::vector<at::Tensor> contexts;
  if (options.cbgm)
    for (const auto& c : inputs.query_context) contexts.push_back(as_float_matrix(c.features));

  // A query whose gallery covers a large part of all detections (PRW, CUHK-SYSU's whole
  // pool) gets its similarities from one blocked matrix product with the other such queries;
  // a small gallery (CUHK-SYSU's 50..4000) is cheaper as per-image dot products.
  std::vector<int64_t> dense, sparse;
  {
    std::vector<uint8_t> seen(num_images, 0);
    for (size_t q = 0; q < num_queries; ++q) {
      int64_t covered = 0;
      for (int32_t i : split.queries[q].gallery)
        if (!seen[i]) { seen[i] = 1; covered += g.count[i]; }
      for (int32_t i : split.queries[q].gallery) seen[i] = 0;
      (g.total() > 0 && 4 * covered >= g.total() ? dense : sparse).push_back(static_cast<int64_t>(q));
    }
  }

  SearchMetrics metrics;
  metrics.topk = options.topk;
  metrics.queries.resize(num_queries);
  const auto run = [&](const std::vector<int64_t>& queries, int64_t begin, int64_t end, const float* dense_rows) {
    at::parallel_for(begin, end, 1, [&](int64_t b, int64_t e) {
      Workspace ws(num_images);
      for (int64_t k = b; k < e; ++k) {
        const size_t q = static_cast<size_t>(queries[k]);
        const float* row = dense_rows ? dense_rows + (k - begin) * g.total() : nullptr;
        metrics.queries[q] = evaluate_query(split, contexts, g, query_features, q, row, options, ws);
      }
    });
  };
  run(sparse, 0, static_cast<int64_t>(sparse.size()), nullptr);
  if (!dense.empty()) {
    // Blocks of about 4M similarities (16 MB).
    const int64_t block = std::clamp<int64_t>((int64_t{1} << 22) / std::max<int64_t>(g.total(), 1), 8, 512);
    const at::Tensor dense_index = at::tensor(dense, at::kLong);
    const at::Tensor gallery_t = g.features.t();
    for (int64_t begin = 0; begin < static_cast<int64_t>(dense.size()); begin += block) {
      const int64_t end = std::min<int64_t>(begin + block, static_cast<int64_t>(dense.size()));
      const at::Tensor sims =
          at::matmul(query_features.index_select(0, dense_index.slice(0, begin, end)), gallery_t).contiguous();
      run(dense, begin, end, sims.data_ptr<float>());
    }
  }

  metrics.topk_accuracy.assign(options.topk.size(), 0.0);
  for (const auto& r : metrics.queries) {
    metrics.mean_ap += r.ap;
    for (size_t k = 0; k < r.hits.size(); ++k) metrics.topk_accuracy[k] += r.hits[k];
  }
  if (num_queries > 0) {
    metrics.mean_ap /= static_cast<double>(num_queries);
    for (auto& a : metrics.topk_accuracy) a /= static_cast<double>(num_queries);
  }
  return metrics;
}

}  // namespace psearch::evaluation
