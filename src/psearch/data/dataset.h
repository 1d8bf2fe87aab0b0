#pragma once
/// The in-memory form of a person-search dataset, shared by the CUHK-SYSU and PRW loaders,
/// the synthetic generator and the evaluator. Boxes are corner boxes (x1, y1, x2, y2) in
/// pixels, converted from the datasets' (x, y, w, h) by the loaders following
/// docs/protocol.md (CUHK-SYSU: integer x, y, w, h; PRW: float corners clipped at 0, then
/// truncated).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace psearch::data {

using Box = std::array<float, 4>;  ///< x1, y1, x2, y2

/// Identity of a box that carries none (CUHK-SYSU unnamed persons, PRW id -2).
constexpr int64_t kUnlabeled = -1;

struct PersonBox {
  Box box{};
  /// Dense training label 0 .. num_labeled_ids-1 for labeled training identities (the OIM
  /// lookup-table index), the dataset's own id for test identities, kUnlabeled otherwise.
  int64_t pid = kUnlabeled;
  bool hard = false;  ///< CUHK-SYSU `ishard`
};

struct ImageRecord {
  std::string name;  ///< file name as the annotations name it, e.g. "s1234.jpg", "c1s3_016471.jpg"
  std::string path;  ///< full path of the image file
  int camera = -1;   ///< PRW camera id (the digit after 'c'); -1 when unknown
  std::vector<PersonBox> persons;
};

/// What a loader read: images and boxes kept, boxes dropped (zero or negative width/height),
/// and identity annotations (CUHK-SYSU Train/TestG boxes) that matched no box of the image.
struct LoadSummary {
  int64_t images = 0;
  int64_t boxes = 0;
  int64_t skipped_degenerate_boxes = 0;
  int64_t unmatched_identity_boxes = 0;
};

/// One query of the search protocol and the gallery it is searched in.
struct SearchQuery {
  int32_t image = -1;  ///< index into SearchSplit::images
  Box box{};
  std::string pid;     ///< identity name as in the dataset ("479", "p1234")
  /// Gallery images (indices into SearchSplit::images), in protocol order.
  std::vector<int32_t> gallery;
  /// The query person's ground-truth box in each gallery image that holds them:
  /// (index into SearchSplit::images, box). Images not listed do not hold the person.
  std::vector<std::pair<int32_t, Box>> positives;
};

/// A test split: every image that can appear in galleries plus the queries.
struct SearchSplit {
  std::vector<ImageRecord> images;
  std::vector<SearchQuery> queries;
  LoadSummary summary;  ///< filled by the dataset loaders
};

/// The training split.
struct TrainSplit {
  std::vector<ImageRecord> images;
  int64_t num_labeled_ids = 0;  ///< size of the OIM lookup table (482 on PRW, 5532 on CUHK-SYSU)
  LoadSummary summary;          ///< filled by the dataset loaders
};

}  // namespace psearch::data
