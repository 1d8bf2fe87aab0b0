#include "psearch/gallery/indexer.h"

#include <ATen/TensorOperators.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "psearch/data/image_io.h"
#include "psearch/data/video.h"
#include "psearch/util/progress.h"

namespace psearch::gallery {
namespace fs = std::filesystem;
namespace {

/// One decoded frame (or a frame that would not decode), or the end of a source.
struct FrameItem {
  size_t source = 0;  ///< index into the run's source list
  int64_t frame = 0;
  double time = 0.0;
  std::string image_name;  ///< a folder's file name
  at::Tensor image;        ///< [3, H, W] RGB in [0, 1]; undefined when it did not decode
  bool end = false;        ///< no more frames of `source`
  bool source_failed = false;
  std::string message;  ///< a warning for a failed frame, or how the source ended
  std::optional<int64_t> frames_total;  ///< the real frame count, when it differs from the announced one
};

/// A bounded queue between the reader thread and the model. cancel() wakes both sides.
class FrameQueue {
 public:
  explicit FrameQueue(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

  /// False when the queue was cancelled (the consumer stopped).
  bool push(FrameItem item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return cancelled_ || items_.size() < capacity_; });
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }
  /// False when the producer finished (close) and everything was taken.
  bool pop(FrameItem& item) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return false;
    item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    not_full_.notify_all();
  }

 private:
  size_t capacity_;
  std::deque<FrameItem> items_;
  bool closed_ = false, cancelled_ = false;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
};

/// A source of this run, with where to start and how many frames to read.
struct PlannedSource {
  SourceRecord record;
  int64_t first_frame = 0;  ///< first multiple of the stride at or after next_frame
  int64_t limit = 0;        ///< frames to read in this run (max_frames - already indexed), or -1: all
  int64_t planned = 0;      ///< frames expected in this run (for the progress bar)
};

SourceKind kind_of(const std::string& path) {
  if (fs::is_directory(path)) return SourceKind::kFolder;
  return is_image_path(path) ? SourceKind::kImage : SourceKind::kVideo;
}

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

/// Reads the frames of one source into the queue. False when the queue was cancelled.
bool read_source(size_t index, const PlannedSource& plan, FrameQueue& queue, const IndexOptions& options) {
  const SourceRecord& r = plan.record;
  FrameItem end;
  end.source = index;
  end.end = true;
  int64_t sent = 0;
  auto room = [&] { return plan.limit < 0 || sent < plan.limit; };
  try {
    if (r.kind == SourceKind::kVideo) {
      data::VideoReader video(r.path);
      if (!video.skip_to(plan.first_frame)) return queue.push(std::move(end));
      data::VideoFrame frame;
      int64_t last = plan.first_frame - 1;
      while (room() && video.next(frame, r.stride)) {
        last = frame.index;
        if (!queue.push({index, frame.index, frame.timestamp, "", frame.image})) return false;
        ++sent;
      }
      // A container that announced more frames than it holds was cut short (or lies).
      if (room() && r.frames_total > 0 && last + r.stride < r.frames_total) {
        end.message = "ended at frame " + std::to_string(last + 1) + " of the " + std::to_string(r.frames_total) +
                      " it announces (truncated?)";
        end.frames_total = last + 1;
      }
    } else {
      const std::vector<std::string> files =
          r.kind == SourceKind::kFolder ? folder_images(r.path) : std::vector<std::string>{r.path};
      for (int64_t i = plan.first_frame; room() && i < static_cast<int64_t>(files.size()); i += r.stride) {
        FrameItem item{index, i, i / options.folder_fps, fs::path(files[i]).filename().string(), {}};
        if (r.kind == SourceKind::kImage) item.image_name.clear();
        try {
          item.image = data::read_image(files[i]);
        } catch (const std::exception& e) {
          item.message = e.what();
        }
        if (!queue.push(std::move(item))) return false;
        ++sent;
      }
    }
  } catch (const std::exception& e) {
    end.source_failed = true;
    end.message = e.what();
  }
  return queue.push(std::move(end));
}

/// Detections of `d` scoring at least min_score.
FrameDetections keep_confident(const modeling::Detections& d, const FrameItem& item, double min_score) {
  const at::Tensor keep = d.scores >= min_score;
  return {item.frame, item.time, item.image_name, d.boxes.index({keep}), d.scores.index({keep}),
          d.features.index({keep})};
}

class Indexer {
 public:
  Indexer(GalleryStore& store, GalleryModel& model, const IndexOptions& options)
      : store_(store), model_(model), options_(options) {
    min_score_ = options.min_score >= 0 ? options.min_score : model.det_thresh;
    batch_size_ = options.batch_size > 0 ? options.batch_size : std::max<int64_t>(model.batch_size, 1);
  }

  IndexSummary run(const std::vector<SourceSpec>& specs) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<PlannedSource> plans = plan(specs);
    int64_t total = 0;
    for (const auto& p : plans) total += p.planned;
    std::optional<util::ProgressBar> bar;
    if (options_.progress) bar.emplace("indexing", total, "frame");
    bar_ = bar ? &*bar : nullptr;

    FrameQueue queue(static_cast<size_t>(options_.queue_frames));
    std::thread reader([&] {
      for (size_t i = 0; i < plans.size(); ++i)
        if (!read_source(i, plans[i], queue, options_)) break;
      queue.close();
    });
    try {
      consume(queue, plans);
    } catch (...) {
      queue.cancel();
      reader.join();
      throw;
    }
    reader.join();
    if (bar) bar->finish();
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  void warn(const std::string& line) {
    std::cerr << "psearch: warning: " << line << "\n";
    summary_.warnings.push_back(line);
  }

  std::vector<PlannedSource> plan(const std::vector<SourceSpec>& specs) {
    std::vector<PlannedSource> plans;
    require_sources(specs);
    for (const SourceSpec& spec : specs) {
      const std::string path = fs::absolute(spec.path).lexically_normal().string();
      std::optional<SourceRecord> record = store_.find_source(path);
      if (record && record->state != "indexing") {
        ++summary_.sources_skipped;
        continue;
      }
      if (!record) {
        record = new_source(spec, path);
        if (!record) continue;
      } else if (!spec.camera.empty() && spec.camera != record->camera) {
        warn(path + ": indexed before as camera '" + record->camera + "'; keeping that name");
      }
      PlannedSource p;
      p.record = *record;
      p.first_frame = round_up(record->next_frame, record->stride);
      p.limit = options_.max_frames > 0 ? std::max<int64_t>(options_.max_frames - record->frames_indexed, 0) : -1;
      p.planned = std::max<int64_t>(record->frames_total - p.first_frame, 0);
      p.planned = (p.planned + record->stride - 1) / record->stride;
      if (p.limit >= 0) p.planned = std::min(p.planned, p.limit);
      plans.push_back(std::move(p));
    }
    return plans;
  }

  /// Registers a source not seen before; nullopt (recorded as failed) when it cannot be opened.
  std::optional<SourceRecord> new_source(const SourceSpec& spec, const std::string& path) {
    SourceRecord r;
    r.path = path;
    r.kind = kind_of(path);
    r.camera = spec.camera.empty() ? fs::path(path).filename().replace_extension().string() : spec.camera;
    r.stride = std::max<int64_t>(options_.every, 1);
    std::string failure;
    if (r.kind == SourceKind::kVideo) {
      try {
        data::VideoReader video(path);
        r.fps = video.fps();
        r.frames_total = video.frame_count();
        if (options_.target_fps > 0 && r.fps > 0)
          r.stride = std::max<int64_t>(1, std::llround(r.fps / options_.target_fps));
      } catch (const std::exception& e) {
        failure = e.what();
      }
    } else {
      r.fps = options_.folder_fps;
      r.frames_total = r.kind == SourceKind::kFolder ? static_cast<int64_t>(folder_images(path).size()) : 1;
      if (r.kind == SourceKind::kFolder && r.frames_total == 0) failure = path + ": no image files in this folder";
    }
    r = store_.add_source(r);
    if (failure.empty()) return r;
    store_.finish_source(r.id, "failed", failure);
    ++summary_.sources_failed;
    warn(failure + " (skipped)");
    return std::nullopt;
  }

  void consume(FrameQueue& queue, const std::vector<PlannedSource>& plans) {
    std::vector<FrameItem> batch;
    FrameItem item;
    while (queue.pop(item)) {
      if (!item.end) {
        batch.push_back(std::move(item));
        if (static_cast<int64_t>(batch.size()) >= batch_size_) flush(batch, plans);
        continue;
      }
      flush(batch, plans);
      const SourceRecord& r = plans[item.source].record;
      if (item.source_failed) {
        ++summary_.sources_failed;
        warn(item.message + " (skipped)");
      } else if (!item.message.empty()) {
        warn(r.path + ": " + item.message);
      }
      store_.finish_source(r.id, item.source_failed ? "failed" : "done", item.message, item.frames_total);
      if (!item.source_failed) ++summary_.sources_indexed;
    }
    flush(batch, plans);
  }

  /// Runs the model on the batch's frames and commits them with the source's progress.
  void flush(std::vector<FrameItem>& batch, const std::vector<PlannedSource>& plans) {
    if (batch.empty()) return;
    std::vector<at::Tensor> images;
    for (const auto& item : batch)
      if (item.image.defined()) images.push_back(item.image);
    std::vector<modeling::Detections> detections;
    {
      c10::NoGradGuard no_grad;
      if (!images.empty()) detections = model_.model->detect_batch(images);
    }
    std::vector<FrameDetections> frames;
    int64_t failed = 0;
    size_t next = 0;
    for (const auto& item : batch) {
      if (!item.image.defined()) {
        ++failed;
        warn(item.message + " (frame skipped)");
        continue;
      }
      frames.push_back(keep_confident(detections[next++], item, min_score_));
      summary_.detections += frames.back().boxes.size(0);
    }
    const SourceRecord& source = plans[batch.front().source].record;
    try {
      store_.commit_frames(source.id, frames, batch.back().frame + 1, failed);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string(e.what()) + " while storing frame " + std::to_string(batch.back().frame) +
                               " of " + source.path + "; everything stored before is kept: rerun to continue");
    }
    summary_.frames += static_cast<int64_t>(frames.size());
    summary_.frames_failed += failed;
    if (bar_) bar_->advance(static_cast<int64_t>(batch.size()));
    batch.clear();
  }

  GalleryStore& store_;
  GalleryModel& model_;
  IndexOptions options_;
  double min_score_ = 0.5;
  int64_t batch_size_ = 1;
  util::ProgressBar* bar_ = nullptr;
  IndexSummary summary_;
};

}  // namespace

void require_sources(const std::vector<SourceSpec>& sources) {
  for (const SourceSpec& spec : sources)
    if (!fs::exists(spec.path)) throw std::runtime_error(spec.path + ": no such file or folder");
}

SourceSpec parse_source_spec(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || fs::exists(text)) return {text, ""};
  return {text.substr(eq + 1), text.substr(0, eq)};
}

bool is_image_path(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".tif" || ext == ".tiff" ||
         ext == ".webp";
}

std::vector<std::string> folder_images(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file() && is_image_path(entry.path().string())) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

IndexSummary index_sources(GalleryStore& store, GalleryModel& model, const std::vector<SourceSpec>& sources,
                           const IndexOptions& options) {
  store.bind_model(model.identity);
  return Indexer(store, model, options).run(sources);
}

}  // namespace psearch::gallery
