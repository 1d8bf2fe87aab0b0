#include "psearch/gallery/searcher.h"

#include <ATen/ops/matmul.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "psearch/evaluation/cbgm.h"

namespace psearch::gallery {

GallerySearcher::GallerySearcher(const GalleryStore& store, IndexKind kind) : store_(store), kind_(kind) {
  const std::string tag = store_.gallery_id();
  const std::string cache = store_.path() + ".ivf";
  // Only the approximate index is worth keeping: the exact one builds as fast as it loads.
  const bool cached = kind == IndexKind::kApproximate && !tag.empty();
  if (cached) index_ = VectorIndex::load(cache, tag);
  // A file restored from an older copy of the gallery holds fewer rows: rebuild then.
  if (index_ && (index_->kind() != kind || index_->last_id() > store_.max_id())) index_.reset();
  if (index_) {
    from_cache_ = true;
    last_id_ = index_->last_id();
    if (refresh() == 0) return;  // up to date; otherwise save what was added
  } else {
    auto [ids, embeddings] = store_.embeddings();
    const auto recorded = store_.model();
    if (embeddings.size(1) == 0 && recorded) embeddings = embeddings.reshape({0, recorded->embedding_dim});
    index_ = std::make_unique<VectorIndex>(ids, embeddings, kind_);
    if (ids.numel() > 0) last_id_ = ids[-1].item<int64_t>();
    if (index_->size() == 0)
      throw std::runtime_error(store.path() + ": the gallery holds no detection; add video with psearch index first");
  }
  if (!cached) return;
  try {
    index_->save(cache, tag);
  } catch (const std::exception&) {  // a read-only folder: the index is rebuilt next time
  }
}

int64_t GallerySearcher::refresh() {
  auto [ids, embeddings] = store_.embeddings(last_id_);
  if (ids.numel() == 0) return 0;
  index_->add(ids, embeddings);
  last_id_ = ids[-1].item<int64_t>();
  return ids.numel();
}

std::vector<SearchHit> GallerySearcher::search(const SearchRequest& request) const {
  std::optional<std::vector<int64_t>> allowed;
  const SearchFilter& f = request.filter;
  if (!f.cameras.empty() || f.time_from || f.time_to) allowed = store_.select(f);
  const bool cbgm = request.context.defined() && request.context.size(0) > 0;
  // One more than asked when the query's own detection may come back first; with CBGM,
  // the k1 best are re-scored before the top-k is cut.
  const int64_t k = std::max(request.top_k, cbgm ? request.cbgm_k1 : 0) + (request.exclude_id ? 1 : 0);
  const auto neighbours = index_->search(request.query.reshape({1, -1}), k, allowed)[0];
  std::map<int64_t, float> similarity;  // detection id -> (re-scored) similarity
  std::vector<int64_t> ids;
  for (const Neighbour& n : neighbours) {
    if (request.exclude_id && n.id == *request.exclude_id) continue;
    similarity[n.id] = n.similarity;
    ids.push_back(n.id);
  }
  std::map<int64_t, DetectionRecord> records;
  for (auto& r : store_.detections(ids)) records.emplace(r.id, std::move(r));
  if (cbgm) rescore_with_context(request, ids, similarity, records);

  std::vector<std::pair<float, int64_t>> ranked;
  for (const auto& [id, sim] : similarity) ranked.emplace_back(sim, id);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<SearchHit> hits;
  for (const auto& [sim, id] : ranked) {
    if (sim < request.min_similarity || static_cast<int64_t>(hits.size()) == request.top_k) break;
    hits.push_back({records.at(id), sim});
  }
  return hits;
}

void GallerySearcher::rescore_with_context(const SearchRequest& request, const std::vector<int64_t>& ranked,
                                           std::map<int64_t, float>& similarity,
                                           std::map<int64_t, DetectionRecord>& records) const {
  const int64_t rows = std::min<int64_t>(request.cbgm_k2, request.context.size(0));
  const at::Tensor context = request.context.narrow(0, 0, rows).to(at::kFloat);
  std::set<std::pair<int64_t, int64_t>> frames;  // (source, frame) of the k1 best, in rank order
  std::vector<std::pair<int64_t, int64_t>> order;
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(i) < request.cbgm_k1; ++i) {
    const DetectionRecord& r = records.at(ranked[i]);
    if (frames.insert({r.source_id, r.frame}).second) order.emplace_back(r.source_id, r.frame);
  }
  for (const auto& [source, frame] : order) {
    std::vector<DetectionRecord> people = store_.frame_detections(source, frame);
    if (request.exclude_id)
      people.erase(std::remove_if(people.begin(), people.end(), [&](const auto& p) { return p.id == *request.exclude_id; }),
                   people.end());
    if (people.empty()) continue;
    std::vector<int64_t> ids;
    for (const auto& p : people) ids.push_back(p.id);
    const int64_t cols = static_cast<int64_t>(ids.size());
    const at::Tensor weight = at::matmul(context, store_.embeddings_of(ids).t()).contiguous();  // [rows, cols]
    const float* w = weight.data_ptr<float>();
    const evaluation::CbgmMatch match = evaluation::cbgm_match(std::vector<float>(w, w + rows * cols), rows, cols);
    if (match.column < 0) continue;
    const DetectionRecord& partner = people[match.column];
    similarity[partner.id] = match.similarity;  // may bring in a detection outside the k best
    records.emplace(partner.id, partner);
  }
}

}  // namespace psearch::gallery
