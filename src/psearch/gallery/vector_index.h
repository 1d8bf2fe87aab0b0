#pragma once
/// Nearest-neighbour search over the gallery's embeddings with FAISS (Debian's
/// libfaiss-dev). Similarity is the inner product of unit-norm embeddings (cosine).
///
///   exact (default): IndexFlatIP, a brute-force scan with FAISS's BLAS kernels;
///   approximate:     IndexIVFFlat (inner product): k-means cells, nlist = 4 sqrt(N)
///                    (at least 39 training vectors per cell), and a query scans the
///                    nprobe = max(nlist / 16, 8) cells nearest to it (about 1/16 of a large
///                    gallery, all of one with at most 8 cells). Its
///                    recall@k against the exact index is measured by recall_at_k and
///                    `psearch bench-gallery`. (HNSW was tried first: 124 s to build 100k
///                    vectors on 2 cores, recall@100 0.68; docs/search.md.)
///
/// Filters (cameras, time window) become an IDSelectorBitmap over the index rows, so a
/// filtered search still returns the top-k among the allowed detections.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace psearch::gallery {

enum class IndexKind { kExact, kApproximate };
std::string to_string(IndexKind kind);
/// "exact" or "approximate"; throws std::runtime_error otherwise.
IndexKind index_kind_from_string(const std::string& text);

struct Neighbour {
  int64_t id = 0;       ///< detection id
  float similarity = 0;  ///< inner product with the query
};

/// Mean recall of `found` against `truth` (one neighbour list per query, same order): the
/// share of each true list that was found.
double recall(const std::vector<std::vector<Neighbour>>& found, const std::vector<std::vector<Neighbour>>& truth);

class VectorIndex {
 public:
  /// Builds the index over ids [N] int64 (ascending) and embeddings [N, D] float32.
  VectorIndex(const at::Tensor& ids, const at::Tensor& embeddings, IndexKind kind);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  /// Appends ids [N] (ascending, above every id already held) and embeddings [N, D].
  void add(const at::Tensor& ids, const at::Tensor& embeddings);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t dim() const { return dim_; }
  IndexKind kind() const { return kind_; }

  /// Top-k neighbours of each query (queries [Q, D] float32), best first, limited to
  /// `allowed` ids when given (ascending detection ids; ids not in the index are ignored).
  /// A row has fewer than k entries when fewer detections are allowed.
  std::vector<std::vector<Neighbour>> search(const at::Tensor& queries, int64_t k,
                                             const std::optional<std::vector<int64_t>>& allowed = std::nullopt) const;

  /// Largest id held (0 when empty).
  int64_t last_id() const { return ids_.empty() ? 0 : ids_.back(); }

  /// Writes the index to `path` atomically: a header with `tag` (what it was built from,
  /// e.g. the gallery's id) and the ids, then FAISS's own serialisation.
  void save(const std::string& path, const std::string& tag) const;
  /// The index saved at `path` with this `tag`, or nullptr when there is none, it was
  /// built from something else, or the file is damaged (the caller rebuilds).
  static std::unique_ptr<VectorIndex> load(const std::string& path, const std::string& tag);

  /// Mean recall@k of this (approximate) index against an exact scan, using `samples`
  /// stored embeddings as queries (1.0 for the exact index).
  double recall_at_k(int64_t k, int64_t samples = 100) const;

 private:
  VectorIndex() = default;

  std::unique_ptr<faiss::Index> quantizer_;  // IVF's coarse quantizer (approximate only)
  std::unique_ptr<faiss::Index> index_;
  size_t nprobe_ = 1;
  std::vector<int64_t> ids_;
  std::vector<float> embeddings_;  // row-major [size, dim], kept for recall measurements
  int64_t dim_ = 0;
  IndexKind kind_ = IndexKind::kExact;
};

}  // namespace psearch::gallery
