#include "psearch/data/synth/synth.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>

#include "psearch/data/synth/files.h"
#include "psearch/data/synth/preview.h"
#include "psearch/data/synth/render.h"
#include "psearch/data/synth/writers.h"
#include "psearch/util/progress.h"

namespace psearch::data::synth {
namespace {

namespace fs = std::filesystem;

constexpr double kHardVisibility = 0.5;

SynthStats count(const Plan& plan) {
  SynthStats s;
  s.images = static_cast<int64_t>(plan.frames.size());
  for (const auto& id : plan.identities) ++(id.test ? s.test_identities : s.train_identities);
  s.identities = s.train_identities + s.test_identities;
  for (const auto& f : plan.frames) {
    ++(f.test ? s.test_images : s.train_images);
    bool labeled = false;
    for (const auto& p : f.persons) {
      ++s.boxes;
      ++(p.identity >= 0 ? s.labeled_boxes : s.unlabeled_boxes);
      s.hard_boxes += is_hard(p);
      labeled |= p.identity >= 0;
    }
    if (!labeled) ++s.distractor_images, s.test_distractor_images += f.test;
  }
  return s;
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + items[i] + "\"";
  return out + "]";
}

/// synth_info.json: how the dataset was made and what it holds, plus each image's camera
/// (CUHK-SYSU file names do not carry one). No timings: reruns must be byte-identical.
void write_info(const SynthOptions& o, const PlanConfig& c, const Plan& plan, const SynthStats& s, const fs::path& root) {
  std::string j = "{\n";
  const auto field = [&](const std::string& key, const std::string& value) { j += "  \"" + key + "\": " + value + ",\n"; };
  field("generator", "\"psearch synth\"");
  field("format", "\"" + format_name(o.format) + "\"");
  field("size", "\"" + size_name(o.size) + "\"");
  field("seed", std::to_string(o.seed));
  field("cameras", std::to_string(c.cameras));
  field("images", std::to_string(s.images));
  field("train_images", std::to_string(s.train_images));
  field("test_images", std::to_string(s.test_images));
  field("identities", std::to_string(s.identities));
  field("train_identities", std::to_string(s.train_identities));
  field("test_identities", std::to_string(s.test_identities));
  field("boxes", std::to_string(s.boxes));
  field("labeled_boxes", std::to_string(s.labeled_boxes));
  field("unlabeled_boxes", std::to_string(s.unlabeled_boxes));
  field("hard_boxes", std::to_string(s.hard_boxes));
  field("distractor_images", std::to_string(s.distractor_images));
  field("test_distractor_images", std::to_string(s.test_distractor_images));
  field("queries", std::to_string(s.queries));
  if (o.format == Format::kCuhkSysu) {
    field("occlusion_queries", std::to_string(s.occlusion_queries));
    field("low_resolution_queries", std::to_string(s.low_resolution_queries));
  }
  std::string sizes;
  for (int n : s.gallery_sizes) sizes += (sizes.empty() ? "" : ", ") + std::to_string(n);
  field("gallery_sizes", "[" + sizes + "]");
  field("alternate_variables", json_list(s.alternate_variables));
  j += "  \"image_camera\": {";
  for (size_t i = 0; i < plan.frames.size(); ++i)
    j += (i ? ", \"" : "\"") + plan.frames[i].name + ".jpg\": " + std::to_string(plan.frames[i].camera + 1);
  j += "}\n}\n";
  write_file_atomically(root / "synth_info.json", j);
}

void write_preview(Plan& plan, const std::vector<cv::Mat>& backgrounds, const fs::path& path) {
  const std::vector<size_t> frames = preview_frames(plan);
  std::vector<cv::Mat> images;
  for (size_t i : frames) images.push_back(render_frame(plan, plan.frames[i], backgrounds[plan.frames[i].camera]));
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_image_atomically(path, contact_sheet(plan, frames, images));
}

/// Renders and writes every image; fills in each person's visibility.
void render_images(Plan& plan, const SynthOptions& o, const fs::path& root, const std::vector<cv::Mat>& backgrounds,
                   int threads) {
  std::unique_ptr<util::ProgressBar> bar;
  if (o.progress) bar = std::make_unique<util::ProgressBar>("synth " + format_name(o.format), plan.frames.size(), "img");
  size_t reported = 0;
  parallel_for(
      plan.frames.size(), threads,
      [&](size_t i) {
        FramePlan& f = plan.frames[i];
        const cv::Mat image = render_frame(plan, f, backgrounds[f.camera]);
        write_image_atomically(root / image_relative_path(plan.format, f), image);
      },
      [&](size_t done) {
        if (bar) bar->advance(static_cast<int64_t>(done - reported));
        reported = done;
      });
  if (bar) bar->finish();
}

}  // namespace

std::string image_relative_path(Format format, const FramePlan& f) {
  return (format == Format::kPrw ? "frames/" : "Image/SSM/") + f.name + ".jpg";
}

std::vector<std::string> owned_entries(Format format) {
  if (format == Format::kPrw)
    return {"frames", "annotations", "frame_train.mat", "frame_test.mat", "query_info.txt", "synth_info.json"};
  return {"Image", "annotation", "synth_info.json"};
}

bool is_hard(const PersonInstance& p) { return p.visible < kHardVisibility; }

Format parse_format(const std::string& text) {
  if (text == "prw") return Format::kPrw;
  if (text == "cuhk-sysu") return Format::kCuhkSysu;
  throw std::invalid_argument("unknown format '" + text + "' (prw or cuhk-sysu)");
}

SizePreset parse_size(const std::string& text) {
  if (text == "tiny") return SizePreset::kTiny;
  if (text == "small") return SizePreset::kSmall;
  if (text == "medium") return SizePreset::kMedium;
  if (text == "large") return SizePreset::kLarge;
  throw std::invalid_argument("unknown size '" + text + "' (tiny, small, medium or large)");
}

std::string format_name(Format format) { return format == Format::kPrw ? "prw" : "cuhk-sysu"; }

std::string size_name(SizePreset size) {
  switch (size) {
    case SizePreset::kTiny: return "tiny";
    case SizePreset::kSmall: return "small";
    case SizePreset::kMedium: return "medium";
    case SizePreset::kLarge: return "large";
  }
  return "?";
}

PlanConfig resolve_config(const SynthOptions& o) {
  PlanConfig c = preset_config(o.format, o.size);
  const double per_image = double(c.identities) / c.images;
  if (o.images > 0) {
    c.images = o.images;
    // Fewer images: CUHK-SYSU gets fewer scenes, and identities follow unless given.
    if (o.format == Format::kCuhkSysu) c.cameras = std::clamp(o.images / 12, 2, c.cameras);
    if (o.identities <= 0) c.identities = std::max(2, static_cast<int>(per_image * o.images));
  }
  if (o.identities > 0) c.identities = o.identities;
  if (o.cameras > 0) c.cameras = o.cameras;
  return c;
}

SynthStats generate_dataset(const SynthOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.out.empty()) throw std::invalid_argument("--out is required");
  if (!o.preview.empty() && fs::path(o.preview).extension() != ".png")
    throw std::invalid_argument("--preview " + o.preview + ": must end in .png");
  const PlanConfig config = resolve_config(o);
  Plan plan = make_plan(config, o.seed);  // before touching the disk: bad options fail first
  const fs::path root = o.out;
  prepare_output_dir(root, o.force, owned_entries(o.format));
  fs::create_directories(root / fs::path(image_relative_path(o.format, plan.frames.front())).parent_path());
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const std::vector<cv::Mat> backgrounds = render_backgrounds(plan, threads);
  render_images(plan, o, root, backgrounds, threads);
  SynthStats stats = count(plan);
  if (o.format == Format::kPrw) write_prw_annotations(plan, root, o.seed, stats);
  else write_cuhk_annotations(plan, root, o.seed, stats);
  write_info(o, config, plan, stats, root);
  if (!o.preview.empty()) write_preview(plan, backgrounds, o.preview);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace psearch::data::synth
