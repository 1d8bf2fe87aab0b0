#pragma once
/// Pictures of search results: frames of stored detections read back from their sources,
/// crops with the box drawn, and the HTML report of one search (query crop, then the hits
/// grouped by camera along a time line).
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "psearch/gallery/searcher.h"

namespace psearch::gallery {

/// The frames [3, H, W] RGB in [0, 1] that the given detections were found in, keyed by
/// (source id, frame). Each video is read once, front to back. A frame that cannot be read
/// any more (the file moved) is left out.
std::map<std::pair<int64_t, int64_t>, at::Tensor> read_frames(const std::vector<DetectionRecord>& detections);

/// JPEG of the region around `box` (x1, y1, x2, y2) of `image` [3, H, W], with the box
/// drawn, scaled to `height` pixels.
std::vector<unsigned char> crop_jpeg(const at::Tensor& image, const float box[4], int height = 256);
/// JPEG of the whole frame, with `box` drawn unless it is null.
std::vector<unsigned char> frame_jpeg(const at::Tensor& image, const float* box);

struct ReportQuery {
  std::string description;  ///< e.g. "query.jpg box [10, 20, 60, 180]" or "gallery detection 42"
  at::Tensor image;         ///< [3, H, W] the query image
  float box[4] = {0, 0, 0, 0};
};

/// Writes `dir`/report.html and its pictures (`dir`/images/*.jpg), atomically per file.
/// Returns the report's path.
std::string write_report(const std::string& dir, const ReportQuery& query, const std::vector<SearchHit>& hits,
                         const std::string& gallery_path);

}  // namespace psearch::gallery
