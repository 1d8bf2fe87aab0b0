// `psearch index`: builds or extends a gallery from videos, image folders and images.
//   psearch index --gallery out/vtest.db --model separate --every 5 walkway=/usr/share/doc/opencv-doc/examples/data/vtest.avi
//   psearch index --gallery g.db --checkpoint out/nae/model_final.pt cam1=a.mp4 cam2=frames/
// Rerunning the same command after an interruption finishes the job; new sources extend
// the gallery without redoing the old ones (docs/search.md).
#include <c10/core/GradMode.h>

#include <iomanip>
#include <iostream>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "psearch/gallery/indexer.h"

namespace psearch::cli {
namespace {

struct IndexArgs {
  std::string gallery, checkpoint, model = "separate", device = "cpu";
  std::vector<std::string> sources, overrides;
  gallery::IndexOptions options;
  int threads = 0;
};

void print_summary(const gallery::IndexSummary& s, const gallery::GalleryStore& store) {
  const gallery::GalleryStats total = store.stats();
  std::cout << std::fixed << std::setprecision(2) << "indexed " << s.frames << " frames from " << s.sources_indexed
            << " source(s) in " << s.seconds << " s (" << (s.seconds > 0 ? s.frames / s.seconds : 0.0)
            << " frames/s): " << s.detections << " detections";
  if (s.sources_skipped) std::cout << "; " << s.sources_skipped << " source(s) already indexed";
  if (s.sources_failed) std::cout << "; " << s.sources_failed << " source(s) failed";
  if (s.frames_failed) std::cout << "; " << s.frames_failed << " frame(s) would not decode";
  if (!s.warnings.empty()) std::cout << " (" << s.warnings.size() << " warning(s) above)";
  std::cout << "\n" << store.path() << ": " << total.detections << " detections in " << total.frames_indexed
            << " frames of " << total.sources << " source(s);";
  for (const auto& [camera, count] : total.detections_per_camera) std::cout << " " << camera << " " << count;
  std::cout << "\n";
}

void run_index(const IndexArgs& args) {
  apply_threads(args.threads);
  c10::NoGradGuard no_grad;
  std::vector<gallery::SourceSpec> sources;
  for (const auto& text : args.sources) sources.push_back(gallery::parse_source_spec(text));
  gallery::require_sources(sources);  // before the model loads and the gallery file is created
  gallery::GalleryModel model = gallery::load_gallery_model(args.checkpoint, args.model, args.overrides,
                                                            parse_device(args.device));
  gallery::GalleryStore store(args.gallery, gallery::GalleryStore::Mode::kCreateOrWrite);
  const gallery::IndexSummary summary = gallery::index_sources(store, model, sources, args.options);
  print_summary(summary, store);
}

void add_index_command(CLI::App& app) {
  auto args = std::make_shared<IndexArgs>();
  auto* cmd = app.add_subcommand("index", "Build or extend a searchable gallery from videos, image folders and images");
  cmd->add_option("sources", args->sources,
                  "Inputs as CAMERA=PATH or PATH (camera: the file name): video files, folders of images, images")
      ->required();
  cmd->add_option("--gallery", args->gallery, "Gallery file (SQLite); created when missing")->required();
  cmd->add_option("--checkpoint", args->checkpoint, "Trained model (psearch train); default: --model");
  cmd->add_option("--model", args->model, "Model without training, when no --checkpoint: separate")
      ->capture_default_str();
  cmd->add_option("--set", args->overrides, "KEY=VALUE config overrides of the model (e.g. inference.det_thresh=0.6)");
  auto* every = cmd->add_option("--every", args->options.every, "Index every N-th frame of a video or folder")
                    ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
                    ->capture_default_str();
  cmd->add_option("--fps", args->options.target_fps, "Index about this many frames per second of video instead")
      ->check(CLI::Range(0.001, 1000.0))
      ->excludes(every);
  cmd->add_option("--folder-fps", args->options.folder_fps, "Timestamps of a folder's images: image N at N / this s")
      ->check(CLI::Range(0.001, 1000000.0))
      ->capture_default_str();
  cmd->add_option("--max-frames", args->options.max_frames, "Index at most this many frames per source (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}))
      ->capture_default_str();
  cmd->add_option("--min-score", args->options.min_score, "Store detections scoring at least this (default: the "
                                                          "model's inference.det_thresh)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--batch-size", args->options.batch_size,
                  "Frames per forward pass and per transaction (default: the model's inference.batch_size)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_flag("!--no-progress", args->options.progress, "No progress bar");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_index(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(39, add_index_command);

}  // namespace psearch::cli
