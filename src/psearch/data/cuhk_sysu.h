#pragma once
/// CUHK-SYSU read from its original layout (root holds Image/SSM/*.jpg and annotation/),
/// following docs/datasets.md and the shared protocol (reference/protocol.md):
///   annotation/Images.mat                  Img:  every image, its boxes (x, y, w, h), ishard
///   annotation/pool.mat                    pool: the test images
///   annotation/test/train_test/Train.mat   Train: the labeled training identities
///   annotation/test/train_test/TestG{N}.mat TestG{N}: 2,900 (Query, Gallery) pairs
///   annotation/test/subset/Occlusion.mat, Resolution.mat: the occlusion / low-resolution
///                                          query subsets (same structure as TestG{N})
/// Every error is a std::runtime_error with one line naming the file and the problem.
#include <array>
#include <string>
#include <vector>

#include "psearch/data/dataset.h"

namespace psearch::data {

/// Query subsets of the CUHK-SYSU test protocol.
enum class CuhkSubset { kNone, kOcclusion, kLowResolution };

/// "none", "occlusion", "low_resolution" (also "low-resolution", "resolution").
CuhkSubset parse_cuhk_subset(const std::string& text);
std::string to_string(CuhkSubset subset);

/// The training split: every image of Images.mat that is not in pool.mat (Images.mat order).
/// Boxes with w <= 0 or h <= 0 (or zero size once truncated to integers) are dropped and
/// counted in `summary.skipped_degenerate_boxes`. A box is labeled with its Train.mat
/// identity index (0 .. N-1, N = num_labeled_ids) when a Train scene entry names the image
/// and the same integer (x, y, w, h); Train boxes that match no box are counted in
/// `summary.unmatched_identity_boxes`. Every other box is kUnlabeled.
TrainSplit load_cuhk_sysu_train(const std::string& root);

/// The test split for one gallery size: 50, 100, 500, 1000, 2000, 4000 (TestG{N}.mat) or -1
/// (the whole pool: TestG50's queries and galleries plus every other pool image as a
/// distractor, the query image excluded). `images` are the pool images in pool.mat order
/// with their boxes; boxes named by the protocol file carry the identity's number
/// ("p1234" -> 1234). Query and ground-truth boxes: (x, y, w, h) truncated to integers,
/// then corners (x, y, x + w, y + h).
/// With a subset, the queries and their galleries are those of the subset file
/// (annotation/test/subset/Occlusion.mat or Resolution.mat); gallery_size must then be -1
/// (subset galleries plus the rest of the pool) or the size of the subset's galleries.
SearchSplit load_cuhk_sysu_test(const std::string& root, int gallery_size = 100, CuhkSubset subset = CuhkSubset::kNone);

/// Gallery sizes with a TestG{N}.mat file.
const std::vector<int>& cuhk_gallery_sizes();

// ---------------------------------------------------------------------------------------
// The readers of the individual files, exposed for the tests and the fuzzers. They check
// structure and value types and return the raw values (boxes as the file stores them).

struct CuhkRawBox {
  std::array<double, 4> xywh{};
  bool hard = false;
};

struct CuhkImageEntry {
  std::string name;
  std::vector<CuhkRawBox> boxes;
};

/// annotation/Images.mat, variable Img.
std::vector<CuhkImageEntry> read_cuhk_images(const std::string& path);
/// annotation/pool.mat, variable pool.
std::vector<std::string> read_cuhk_pool(const std::string& path);

struct CuhkSceneBox {
  std::string image;
  std::array<double, 4> xywh{};
  bool hard = false;
};

struct CuhkIdentity {
  std::string name;  ///< idname, e.g. "p1234"
  std::vector<CuhkSceneBox> scenes;
};

/// annotation/test/train_test/Train.mat, variable Train.
std::vector<CuhkIdentity> read_cuhk_train(const std::string& path);

struct CuhkGalleryEntry {
  std::string image;
  bool has_box = false;  ///< false: empty idlocate, the image does not hold the person
  std::array<double, 4> xywh{};
};

struct CuhkProtocolEntry {
  std::string query_image;
  std::array<double, 4> query_xywh{};
  std::string identity;  ///< Query.idname
  std::vector<CuhkGalleryEntry> gallery;
};

/// A TestG{N}.mat-shaped file: the first of `variables` present in the file, a struct array
/// with fields Query and Gallery.
std::vector<CuhkProtocolEntry> read_cuhk_protocol(const std::string& path, const std::vector<std::string>& variables);

/// CUHK-SYSU box rule: x, y, w, h truncated toward zero, then corners (x, y, x+w, y+h).
Box cuhk_corner_box(const std::array<double, 4>& xywh);

}  // namespace psearch::data
