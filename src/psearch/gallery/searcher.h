#pragma once
/// Searching a gallery: the nearest stored detections of a query embedding, restricted by
/// camera and time, above a minimum similarity, best first.
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "psearch/gallery/gallery_store.h"
#include "psearch/gallery/vector_index.h"

namespace psearch::gallery {

struct SearchRequest {
  at::Tensor query;  ///< [D] float32, unit norm (the model's query embedding)
  SearchFilter filter;
  int64_t top_k = 20;
  double min_similarity = -1.0;       ///< hits below are dropped
  std::optional<int64_t> exclude_id;  ///< the query's own detection, when searching from one
  /// CBGM re-ranking (evaluation/cbgm.h) when defined: [R, D], the query embedding first,
  /// then the other people of the query image, most confident first.
  at::Tensor context;
  int64_t cbgm_k1 = 30;  ///< frames holding the k1 best hits are re-scored (PRW's setting)
  int64_t cbgm_k2 = 4;   ///< context rows used
};

struct SearchHit {
  DetectionRecord detection;
  float similarity = 0.0f;
};

class GallerySearcher {
 public:
  /// Loads every embedding of `store` into a vector index of `kind`. The approximate index
  /// is kept next to the gallery (`<gallery>.ivf`) and reused while it belongs to this
  /// gallery, topped up with what was added since. Throws a one-line error when the gallery
  /// holds no detection.
  GallerySearcher(const GalleryStore& store, IndexKind kind);

  /// Whether the index came from the saved file (approximate only).
  bool from_cache() const { return from_cache_; }

  /// Adds the detections stored since the index was built or last refreshed (an indexer
  /// running next to a server). Returns how many were added. Not thread-safe with search():
  /// the server serialises them (a shared mutex).
  int64_t refresh();
  std::vector<SearchHit> search(const SearchRequest& request) const;
  const VectorIndex& index() const { return *index_; }

 private:

  /// CBGM: re-scores the frames of the k1 best hits (`ranked`, best first).
  void rescore_with_context(const SearchRequest& request, const std::vector<int64_t>& ranked,
                            std::map<int64_t, float>& similarity, std::map<int64_t, DetectionRecord>& records) const;

  const GalleryStore& store_;
  IndexKind kind_;
  int64_t last_id_ = 0;  ///< largest detection id in the index
  bool from_cache_ = false;
  std::unique_ptr<VectorIndex> index_;
};

}  // namespace psearch::gallery
