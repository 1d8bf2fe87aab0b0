#pragma once
/// Indexing: runs a person-search model's gallery path over video files, image folders
/// and single images, and stores every detection in a gallery (gallery_store.h).
///
/// A reader thread decodes frames into a bounded queue while the model runs on batches of
/// the previous ones. Each batch is committed in one transaction with the source's
/// progress, so a run stopped at any point (kill -9, disk full) resumes where it stopped
/// and adds no detection twice. Sources that are already done are skipped: adding a camera
/// to a gallery does not redo the others.
#include <cstdint>
#include <string>
#include <vector>

#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/gallery_store.h"

namespace psearch::gallery {

/// One input: a video file, a folder of images (frames in file-name order) or an image.
struct SourceSpec {
  std::string path;
  std::string camera;  ///< empty: the file or folder name without extension
};

/// "CAMERA=PATH" or "PATH" (a path that itself contains '=' needs the CAMERA= prefix).
SourceSpec parse_source_spec(const std::string& text);

/// Throws "<path>: no such file or folder" for the first source that does not exist:
/// checked before any work starts (index_sources does it too).
void require_sources(const std::vector<SourceSpec>& sources);

struct IndexOptions {
  int64_t every = 1;         ///< index every N-th frame
  double target_fps = 0.0;   ///< > 0: stride = round(video fps / target_fps) instead of `every`
  double folder_fps = 1.0;   ///< timestamps of a folder's images: frame / folder_fps seconds
  int64_t max_frames = 0;    ///< > 0: at most this many frames per source (a sample)
  double min_score = -1.0;   ///< keep detections scoring at least this; < 0: the model's det_thresh
  int64_t batch_size = 0;    ///< frames per forward pass and per transaction; 0: the model's
  int64_t queue_frames = 32; ///< decoded frames the reader may run ahead
  bool progress = true;      ///< progress bar on stderr
};

struct IndexSummary {
  int64_t sources_indexed = 0;  ///< indexed (or finished) in this run
  int64_t sources_skipped = 0;  ///< already done before this run
  int64_t sources_failed = 0;   ///< could not be decoded at all
  int64_t frames = 0;           ///< frames run through the model in this run
  int64_t frames_failed = 0;    ///< frames (images) that would not decode, skipped
  int64_t detections = 0;       ///< detections stored in this run
  double seconds = 0.0;
  std::vector<std::string> warnings;  ///< one line each (also printed as they happen)
};

/// Indexes `sources` into `store` with `model` (already bound to the store). Throws
/// std::runtime_error (one line) for a missing path or a failed write; what was committed
/// before stays and the next run continues from there.
IndexSummary index_sources(GalleryStore& store, GalleryModel& model, const std::vector<SourceSpec>& sources,
                           const IndexOptions& options);

/// Image files of a folder (JPEG, PNG, BMP, TIFF, WebP), sorted by name.
std::vector<std::string> folder_images(const std::string& folder);
bool is_image_path(const std::string& path);

}  // namespace psearch::gallery
