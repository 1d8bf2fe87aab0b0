#pragma once
/// The persistent gallery: one SQLite database (WAL mode) holding every indexed source
/// (video file, image folder or image), its indexing progress, and every detection with
/// its camera, frame, timestamp, box, score and embedding. SQLite is the only source of
/// truth; the nearest-neighbour index (vector_index.h) is rebuilt from it.
///
/// Consistency: each batch of frames is committed in one transaction together with the
/// source's progress (next_frame), so an interrupted run (kill -9, disk full, read-only
/// file) leaves the detections of whole batches only, and the next run resumes at
/// next_frame: no detection is lost or stored twice.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace psearch::gallery {

/// Which model produced the embeddings: a gallery accepts detections, and answers
/// queries, from this model only.
struct ModelIdentity {
  std::string type;        ///< model.type, e.g. "separate", "nae"
  std::string source;      ///< the checkpoint path, or "pretrained" for models built from weight files
  std::string sha256;      ///< hash of the checkpoint file (or of the config and weight files)
  int64_t embedding_dim = 0;
  std::vector<std::string> overrides;  ///< --set overrides the model was built with
};

enum class SourceKind { kVideo, kFolder, kImage };
std::string to_string(SourceKind kind);

/// One indexed input. Frames of a folder are its image files in name order.
struct SourceRecord {
  int64_t id = 0;
  std::string path;  ///< absolute path
  std::string camera;
  SourceKind kind = SourceKind::kVideo;
  int64_t stride = 1;        ///< every stride-th frame is indexed
  double fps = 0.0;          ///< frames per second (folders: the --folder-fps used for timestamps)
  int64_t frames_total = 0;  ///< frames announced (video) or image files (folder)
  int64_t next_frame = 0;    ///< first frame not yet indexed
  int64_t frames_indexed = 0;
  int64_t frames_failed = 0;  ///< frames (images) that would not decode
  std::string state = "indexing";  ///< "indexing", "done" or "failed"
  std::string message;             ///< why it failed, or a warning (truncated video)
};

/// One stored detection.
struct DetectionRecord {
  int64_t id = 0;
  int64_t source_id = 0;
  std::string camera, source_path;
  int64_t frame = 0;
  double time = 0.0;   ///< seconds from the start of the source
  std::string image;   ///< a folder source's file name ("" for videos)
  float box[4] = {0, 0, 0, 0};  ///< x1, y1, x2, y2 in frame pixels
  float score = 0.0f;
};

/// The detections of one frame, ready to store. boxes [N, 4], scores [N], features [N, D].
struct FrameDetections {
  int64_t frame = 0;
  double time = 0.0;
  std::string image;
  at::Tensor boxes, scores, features;
};

/// Restricts a search: empty fields do not filter.
struct SearchFilter {
  std::vector<std::string> cameras;
  std::optional<double> time_from, time_to;  ///< seconds, inclusive
};

struct GalleryStats {
  int64_t sources = 0, sources_done = 0, detections = 0, frames_indexed = 0, frames_failed = 0;
  std::vector<std::pair<std::string, int64_t>> detections_per_camera;
};

class GalleryStore {
 public:
  enum class Mode { kRead, kWrite, kCreateOrWrite };

  /// Opens (or creates, kCreateOrWrite) the gallery at `path`. Throws std::runtime_error
  /// "<path>: ..." (one line) when the file is missing, not a psearch gallery, or of
  /// another format version.
  GalleryStore(const std::string& path, Mode mode);
  ~GalleryStore();
  GalleryStore(const GalleryStore&) = delete;
  GalleryStore& operator=(const GalleryStore&) = delete;

  const std::string& path() const { return path_; }
  /// A random id given to the gallery when it was created ("" for galleries made before
  /// it existed): caches of the vector index name it, so they never serve another file.
  std::string gallery_id() const;

  /// The model the gallery was built with (nullopt for a new, empty gallery).
  std::optional<ModelIdentity> model() const;
  /// Records the model of a new gallery, or checks that `model` is the recorded one;
  /// throws a one-line error naming both models otherwise.
  void bind_model(const ModelIdentity& model);

  /// The source with this absolute path, if it was added before.
  std::optional<SourceRecord> find_source(const std::string& path) const;
  /// Adds a source (state "indexing", next_frame 0) and returns it with its id.
  SourceRecord add_source(SourceRecord source);
  std::vector<SourceRecord> sources() const;
  /// The source with this id; throws when there is none.
  SourceRecord source(int64_t id) const;
  /// Frames of a source that hold detections, ascending, with their detection counts.
  std::vector<std::pair<int64_t, int64_t>> frames_with_detections(int64_t source_id) const;

  /// Stores the detections of consecutive frames of `source_id` and moves its next_frame
  /// to `next_frame`, in one transaction. frames_failed counts frames in the batch that
  /// would not decode. Throws (one line) and stores nothing when the write fails.
  void commit_frames(int64_t source_id, const std::vector<FrameDetections>& frames, int64_t next_frame,
                     int64_t frames_failed = 0);
  /// Sets the final state ("done" or "failed") and a message.
  void finish_source(int64_t source_id, const std::string& state, const std::string& message,
                     std::optional<int64_t> frames_total = std::nullopt);

  /// Ids of the detections that pass `filter`, ascending. All ids when the filter is empty.
  std::vector<int64_t> select(const SearchFilter& filter) const;
  /// The id (ascending) and embedding of every detection with id > after_id: ids [N] int64,
  /// embeddings [N, D] float32. Ids only grow, so after_id = the largest id seen gives
  /// what was added since.
  std::pair<at::Tensor, at::Tensor> embeddings(int64_t after_id = 0) const;
  /// Embeddings of the given detections, in order: [N, D]; throws on an unknown id.
  at::Tensor embeddings_of(const std::vector<int64_t>& ids) const;
  /// Records of the given ids, in the given order; throws on an unknown id.
  std::vector<DetectionRecord> detections(const std::vector<int64_t>& ids) const;
  /// Every detection of one frame of one source.
  std::vector<DetectionRecord> frame_detections(int64_t source_id, int64_t frame) const;
  GalleryStats stats() const;
  /// The largest detection id (0 when empty).
  int64_t max_id() const;

 private:
  void exec(const std::string& sql) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace psearch::gallery
