#include "psearch/gallery/searcher.h"

#include <stdexcept>

namespace psearch::gallery {

GallerySearcher::GallerySearcher(const GalleryStore& store, IndexKind kind) : store_(store), kind_(kind) {
  auto [ids, embeddings] = store_.embeddings();
  const auto recorded = store_.model();
  if (embeddings.size(1) == 0 && recorded) embeddings = embeddings.reshape({0, recorded->embedding_dim});
  index_ = std::make_unique<VectorIndex>(ids, embeddings, kind_);
  if (ids.numel() > 0) last_id_ = ids[-1].item<int64_t>();
  if (index_->size() == 0)
    throw std::runtime_error(store.path() + ": the gallery holds no detection; add video with psearch index first");
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
  // One more than asked when the query's own detection may come back first.
  const int64_t k = request.top_k + (request.exclude_id ? 1 : 0);
  const auto neighbours = index_->search(request.query.reshape({1, -1}), k, allowed)[0];
  std::vector<int64_t> ids;
  std::vector<float> similarities;
  for (const Neighbour& n : neighbours) {
    if (request.exclude_id && n.id == *request.exclude_id) continue;
    if (n.similarity < request.min_similarity) break;  // sorted, best first
    if (static_cast<int64_t>(ids.size()) == request.top_k) break;
    ids.push_back(n.id);
    similarities.push_back(n.similarity);
  }
  std::vector<SearchHit> hits;
  const auto records = store_.detections(ids);
  for (size_t i = 0; i < records.size(); ++i) hits.push_back({records[i], similarities[i]});
  return hits;
}

}  // namespace psearch::gallery
