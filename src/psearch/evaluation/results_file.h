#pragma once
/// Reading and writing the framework-neutral results file (docs/results_format.md): a torch.save'd dict
/// with the detections and embeddings of every test image and the embedding of every query,
/// so that any implementation's output can be scored by `psearch eval-results`.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "psearch/data/dataset.h"
#include "psearch/evaluation/detections.h"

namespace psearch::evaluation {

/// Value of the file's "format" entry.
inline constexpr const char* kResultsFormat = "psearch-results/1";

/// A results file as read, before it is matched to a dataset split. Tensors are float32.
struct ResultsFile {
  std::string path;
  int64_t dim = 0;                           ///< embedding size D
  std::vector<std::string> gallery_images;   ///< image names, file order
  std::vector<modeling::Detections> gallery;      ///< boxes [N, 4], scores [N], features [N, D]
  std::vector<std::string> query_images;     ///< query image names, dataset query order
  std::vector<data::Box> query_boxes;
  at::Tensor query_features;                 ///< [Q, D]
  std::vector<QueryContext> query_context;   ///< per query, or empty when the file has none
};

/// Reads and checks a results file: the format tag, the structure, every shape, one D
/// throughout, finite numbers, no image listed twice. Throws std::runtime_error with one line
/// that names the file and the offending entry.
ResultsFile read_results_file(const std::string& path);

/// Writes `results` as a results file (the format above, readable by torch.load and by
/// read_results_file), atomically. query_context is written as "query_detections" when not
/// empty. Throws std::runtime_error naming the path.
void write_results_file(const std::string& path, const ResultsFile& results);

/// Puts the file's detections in `split.images` order and checks the queries against
/// `split.queries` (same count; same image and, to within 1 pixel, the same box, in the same
/// order). Images of the file that the split does not use are ignored; their number goes to
/// `unused_images` when given. Throws std::runtime_error naming the file and the first image
/// of the split that the file lacks (with how many more are missing) or the first query that
/// differs.
SearchInputs match_results(const ResultsFile& results, const data::SearchSplit& split,
                           int64_t* unused_images = nullptr);

}  // namespace psearch::evaluation
