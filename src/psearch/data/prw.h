#pragma once
/// PRW read from its original layout (root holds frames/*.jpg, annotations/, frame_train.mat,
/// frame_test.mat and query_info.txt), following docs/datasets.md and the shared protocol:
///   annotations/<frame>.jpg.mat  N x 5 rows [id, x, y, w, h] under box_new, else anno_file,
///                                else anno_previous; id -2 = unlabeled person
///   frame_train.mat / frame_test.mat  img_index_train / img_index_test: frame names, no .jpg
///   query_info.txt               lines "pid x y w h frame" (CRLF or LF)
/// Every error is a std::runtime_error with one line naming the file and the problem.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "psearch/data/dataset.h"

namespace psearch::data {

/// The training split: the frames of frame_train.mat in file order. Labeled identities are
/// numbered densely 0 .. num_labeled_ids-1 in increasing order of their PRW id (482 on the
/// real data); id -2 is kUnlabeled. Boxes: float corners (x, y, x+w, y+h) clipped at 0, then
/// truncated to integers; boxes with w <= 0 or h <= 0, or empty after clipping, are dropped
/// and counted in `summary.skipped_degenerate_boxes`.
TrainSplit load_prw_train(const std::string& root);

/// The test split: `images` are the frames of frame_test.mat (boxes as above, labeled boxes
/// carry their PRW id), one query per line of query_info.txt. Gallery: every test frame
/// except the query frame, in frame_test.mat order; with ignore_cam_id = false, also
/// without the frames of the query's camera. Positives: the gallery frames holding a box
/// with the query's id (that box).
SearchSplit load_prw_test(const std::string& root, bool ignore_cam_id = true);

/// Camera of a PRW frame: the digit after the first 'c' ("c1s3_016471" -> 1); -1 if none.
int prw_camera_id(const std::string& frame_name);

/// PRW box rule: float corners (x, y, x+w, y+h), negatives clipped to 0, then truncated.
Box prw_corner_box(double x, double y, double w, double h);

// ---------------------------------------------------------------------------------------
// The readers of the individual files, exposed for the tests and the fuzzers.

struct PrwQueryLine {
  int64_t pid = 0;
  std::array<double, 4> xywh{};
  std::string frame;  ///< as written (normally without ".jpg")
  int line = 0;       ///< 1-based line number in the file
};

/// Parses the text of query_info.txt. Lines are "pid x y w h frame" separated by spaces or
/// tabs; line ends CRLF or LF; blank lines (e.g. a trailing one) are skipped. A malformed
/// line throws "<source>:<line>: <problem>".
std::vector<PrwQueryLine> parse_prw_query_info(std::string_view text, const std::string& source);

/// Reads and parses query_info.txt.
std::vector<PrwQueryLine> read_prw_query_info(const std::string& path);

struct PrwAnnotationRow {
  double id = 0;
  std::array<double, 4> xywh{};
};

/// One annotations/<frame>.jpg.mat file: the rows of box_new, else anno_file, else
/// anno_previous.
std::vector<PrwAnnotationRow> read_prw_annotation(const std::string& path);

/// frame_train.mat (variable img_index_train) or frame_test.mat (img_index_test).
std::vector<std::string> read_prw_frame_list(const std::string& path, const std::string& variable);

}  // namespace psearch::data
