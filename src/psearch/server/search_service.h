#pragma once
/// What the HTTP API serves, independent of HTTP: gallery statistics, searches (from a
/// stored detection, an uploaded image or a box in a gallery frame, with the filters of
/// `psearch search`), and pictures of detections and frames. Safe to call from many
/// threads at once: searches share the vector index (a shared lock), picking up detections
/// that a running `psearch index` adds (an exclusive lock while they are appended), and
/// the model embeds one query at a time.
#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/gallery_store.h"
#include "psearch/gallery/query.h"
#include "psearch/gallery/searcher.h"

namespace psearch::server {

/// A request the client got wrong (HTTP 400 with this message).
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A detection, source or frame that does not exist (HTTP 404).
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class SearchService {
 public:
  /// Opens the gallery read-only. `checkpoint`: the gallery's model file when it moved.
  /// Throws a one-line error for a missing, foreign or empty gallery.
  SearchService(const std::string& gallery, gallery::IndexKind kind, std::string checkpoint, c10::Device device);

  nlohmann::json health();
  /// Model, sources (with cameras and states), detections per camera, the index kind and
  /// its recall@20 against an exact scan.
  nlohmann::json stats();
  /// Frames of a source that hold detections: [[frame, count], ...].
  nlohmann::json source_frames(int64_t source_id);
  /// The detections of one frame (id, box, score).
  nlohmann::json frame_detections(int64_t source_id, int64_t frame);

  /// request: one of {"id": N} | {"image": base64 JPEG/PNG, "box": [x1, y1, x2, y2]} |
  /// {"source": S, "frame": F, "box": [...]}, plus optional "cameras": [...], "from", "to"
  /// (seconds), "min_similarity", "top_k" (default 20), "cbgm" (true: CBGM re-ranking).
  /// Returns {"query": ..., "hits": [...]}.
  nlohmann::json search(const nlohmann::json& request);

  /// JPEG of a detection's region (crop) or of its whole frame with the box drawn.
  std::vector<unsigned char> detection_jpeg(int64_t id, bool whole_frame);
  /// JPEG of a frame of a source.
  std::vector<unsigned char> frame_jpeg(int64_t source_id, int64_t frame);

 private:
  gallery::Query make_query(const nlohmann::json& request);
  at::Tensor read_frame(int64_t source_id, int64_t frame);
  gallery::GalleryModel& model();

  gallery::GalleryStore store_;
  gallery::ModelIdentity identity_;
  std::string checkpoint_;
  c10::Device device_;
  std::shared_mutex index_mutex_;
  std::unique_ptr<gallery::GallerySearcher> searcher_;
  double recall_at_20_ = 1.0;  ///< of the approximate index when the server started
  std::mutex model_mutex_;
  std::unique_ptr<gallery::GalleryModel> model_;
};

}  // namespace psearch::server
