#include "psearch/gallery/vector_index.h"

#include <ATen/ops/from_blob.h>
#include <ATen/ops/randperm.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include "psearch/util/atomic_file.h"

namespace psearch::gallery {
namespace {

constexpr int64_t kMinPointsPerCell = 39;  // FAISS's k-means warns below this
constexpr int64_t kProbeFraction = 16;     // a query scans 1/16 of the cells ...
constexpr int64_t kMinProbes = 8;          // ... but at least 8

/// Cells of the IVF index for n vectors: 4 sqrt(n), with enough training points each.
int64_t cells_for(int64_t n) {
  const int64_t wanted = static_cast<int64_t>(std::lround(4.0 * std::sqrt(static_cast<double>(n))));
  return std::max<int64_t>(1, std::min(wanted, n / kMinPointsPerCell));
}

}  // namespace

std::string to_string(IndexKind kind) { return kind == IndexKind::kExact ? "exact" : "approximate"; }

IndexKind index_kind_from_string(const std::string& text) {
  if (text == "exact") return IndexKind::kExact;
  if (text == "approximate") return IndexKind::kApproximate;
  throw std::runtime_error("index kind '" + text + "': use exact or approximate");
}

VectorIndex::VectorIndex(const at::Tensor& ids, const at::Tensor& embeddings, IndexKind kind) : kind_(kind) {
  if (embeddings.dim() != 2) throw std::invalid_argument("VectorIndex: embeddings [N, D] expected");
  dim_ = embeddings.size(1);
  if (kind == IndexKind::kExact) {
    index_ = std::make_unique<faiss::IndexFlatIP>(dim_);
  } else {
    // The cells are learnt from the vectors present at build time; later additions (a
    // server refreshing while an indexer runs) go to their nearest cells.
    const at::Tensor train = embeddings.to(at::kFloat).contiguous();
    const int64_t cells = cells_for(train.size(0));
    quantizer_ = std::make_unique<faiss::IndexFlatIP>(dim_);
    auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer_.get(), dim_, cells, faiss::METRIC_INNER_PRODUCT);
    ivf->cp.seed = 1234;  // reproducible cells
    if (train.size(0) > 0) ivf->train(train.size(0), train.data_ptr<float>());
    // At least 8 cells (all of a small gallery's): a cell boundary then rarely hides a neighbour.
    nprobe_ = static_cast<size_t>(std::min<int64_t>(cells, std::max<int64_t>(kMinProbes, cells / kProbeFraction)));
    index_ = std::move(ivf);
  }
  add(ids, embeddings);
}

void VectorIndex::add(const at::Tensor& ids, const at::Tensor& embeddings) {
  if (embeddings.dim() != 2 || embeddings.size(1) != dim_ || ids.dim() != 1 || ids.size(0) != embeddings.size(0))
    throw std::invalid_argument("VectorIndex::add: ids [N] and embeddings [N, D] expected");
  const int64_t n = ids.size(0);
  if (n == 0) return;
  const at::Tensor e = embeddings.to(at::kFloat).contiguous();
  const at::Tensor id_tensor = ids.to(at::kLong).contiguous();
  const int64_t* id_data = id_tensor.data_ptr<int64_t>();
  if (!ids_.empty() && id_data[0] <= ids_.back())
    throw std::invalid_argument("VectorIndex::add: ids must grow");
  ids_.insert(ids_.end(), id_data, id_data + n);
  embeddings_.insert(embeddings_.end(), e.data_ptr<float>(), e.data_ptr<float>() + n * dim_);
  index_->add(n, e.data_ptr<float>());
}

VectorIndex::~VectorIndex() = default;

std::vector<std::vector<Neighbour>> VectorIndex::search(const at::Tensor& queries, int64_t k,
                                                        const std::optional<std::vector<int64_t>>& allowed) const {
  const at::Tensor q = queries.to(at::kFloat).contiguous();
  if (q.dim() != 2 || q.size(1) != dim_)
    throw std::runtime_error("query embedding has " + std::to_string(q.dim() == 2 ? q.size(1) : q.numel()) +
                             " dimensions, the gallery " + std::to_string(dim_));
  const int64_t nq = q.size(0);
  std::vector<std::vector<Neighbour>> out(nq);
  if (size() == 0 || k <= 0) return out;

  // Row selection: ids_ and `allowed` are both ascending, so one merge pass marks rows.
  std::vector<uint8_t> bitmap;
  std::unique_ptr<faiss::IDSelectorBitmap> selector;
  int64_t candidates = size();
  if (allowed) {
    bitmap.assign((ids_.size() + 7) / 8, 0);
    candidates = 0;
    size_t j = 0;
    for (size_t row = 0; row < ids_.size() && j < allowed->size(); ++row) {
      while (j < allowed->size() && (*allowed)[j] < ids_[row]) ++j;
      if (j < allowed->size() && (*allowed)[j] == ids_[row]) {
        bitmap[row / 8] |= static_cast<uint8_t>(1u << (row % 8));
        ++candidates;
      }
    }
    if (candidates == 0) return out;
    selector = std::make_unique<faiss::IDSelectorBitmap>(ids_.size(), bitmap.data());
  }
  const int64_t kk = std::min(k, candidates);
  std::vector<float> distances(nq * kk);
  std::vector<faiss::Index::idx_t> labels(nq * kk);
  faiss::SearchParametersIVF params;  // a SearchParameters; nprobe read by the IVF index only
  params.sel = selector.get();
  params.nprobe = nprobe_;
  index_->search(nq, q.data_ptr<float>(), kk, distances.data(), labels.data(), &params);
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < kk; ++j) {
      const auto label = labels[i * kk + j];
      if (label < 0) continue;  // fewer reachable neighbours than k (approximate, filtered)
      out[i].push_back({ids_[label], distances[i * kk + j]});
    }
  }
  return out;
}

namespace {
constexpr const char* kIndexFileMagic = "psearch-vector-index/1";
}

void VectorIndex::save(const std::string& path, const std::string& tag) const {
  faiss::VectorIOWriter writer;
  faiss::write_index(index_.get(), &writer);
  std::ostringstream header;
  header << kIndexFileMagic << "\n" << tag << "\n" << to_string(kind_) << " " << nprobe_ << " " << dim_ << " "
         << ids_.size() << "\n";
  std::string bytes = header.str();
  bytes.append(reinterpret_cast<const char*>(ids_.data()), ids_.size() * sizeof(int64_t));
  bytes.append(reinterpret_cast<const char*>(writer.data.data()), writer.data.size());
  util::write_bytes_atomically(path, bytes);
}

std::unique_ptr<VectorIndex> VectorIndex::load(const std::string& path, const std::string& tag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  std::string magic, file_tag, kind;
  size_t nprobe = 0, count = 0;
  int64_t dim = 0;
  if (!std::getline(in, magic) || magic != kIndexFileMagic || !std::getline(in, file_tag) || file_tag != tag)
    return nullptr;
  if (!(in >> kind >> nprobe >> dim >> count) || in.get() != '\n') return nullptr;
  auto index = std::unique_ptr<VectorIndex>(new VectorIndex());
  try {
    index->kind_ = index_kind_from_string(kind);
    index->ids_.resize(count);
    if (!in.read(reinterpret_cast<char*>(index->ids_.data()), static_cast<std::streamsize>(count * sizeof(int64_t))))
      return nullptr;
    faiss::VectorIOReader reader;
    reader.data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    index->index_.reset(faiss::read_index(&reader));
    if (index->index_->ntotal != static_cast<faiss::Index::idx_t>(count) || index->index_->d != dim) return nullptr;
    index->dim_ = dim;
    index->nprobe_ = nprobe;
    // The vectors, for recall measurements (an IVF list holds them; the direct map finds them).
    index->embeddings_.resize(count * static_cast<size_t>(dim));
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index->index_.get())) ivf->make_direct_map();
    if (count > 0) index->index_->reconstruct_n(0, static_cast<faiss::Index::idx_t>(count), index->embeddings_.data());
  } catch (const std::exception&) {  // faiss::FaissException for a damaged file: rebuild
    return nullptr;
  }
  return index;
}

double VectorIndex::recall_at_k(int64_t k, int64_t samples) const {
  if (kind_ == IndexKind::kExact || size() == 0) return 1.0;
  samples = std::min(samples, size());
  const at::Tensor all = at::from_blob(const_cast<float*>(embeddings_.data()), {size(), dim_}, at::kFloat);
  const at::Tensor rows = at::randperm(size(), at::kLong).narrow(0, 0, samples);
  const at::Tensor queries = all.index_select(0, rows).contiguous();
  faiss::IndexFlatIP exact(dim_);
  exact.add(size(), embeddings_.data());
  const int64_t kk = std::min(k, size());
  std::vector<float> distances(samples * kk);
  std::vector<faiss::Index::idx_t> labels(samples * kk);
  exact.search(samples, queries.data_ptr<float>(), kk, distances.data(), labels.data());
  std::vector<std::vector<Neighbour>> truth(samples);
  for (int64_t i = 0; i < samples; ++i)
    for (int64_t j = 0; j < kk; ++j) truth[i].push_back({ids_[labels[i * kk + j]], distances[i * kk + j]});
  return recall(search(queries, k), truth);
}

double recall(const std::vector<std::vector<Neighbour>>& found, const std::vector<std::vector<Neighbour>>& truth) {
  double hits = 0, total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    std::set<int64_t> wanted;
    for (const auto& n : truth[q]) wanted.insert(n.id);
    for (const auto& n : found[q]) hits += static_cast<double>(wanted.count(n.id));
    total += static_cast<double>(wanted.size());
  }
  return total > 0 ? hits / total : 1.0;
}

}  // namespace psearch::gallery
