// `psearch synth`: writes a synthetic person-search dataset in the PRW or CUHK-SYSU
// on-disk format (docs/synthetic_data.md).
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/synth/synth.h"

namespace psearch::cli {
namespace {

namespace synth = psearch::data::synth;

struct SynthArgs {
  std::string format, out, size = "small", preview;
  uint64_t seed = 0;
  int images = 0, identities = 0, cameras = 0, threads = 0;
  bool force = false;
};

void print_summary(const synth::SynthOptions& o, const synth::SynthStats& s) {
  std::printf("wrote %s dataset to %s in %.1f s\n", synth::format_name(o.format).c_str(), o.out.c_str(), s.seconds);
  std::printf("  images      %lld (train %lld, test %lld; %lld without labeled persons, %lld of them test)\n",
              (long long)s.images, (long long)s.train_images, (long long)s.test_images,
              (long long)s.distractor_images, (long long)s.test_distractor_images);
  std::printf("  identities  %lld (train %lld, test %lld)\n", (long long)s.identities, (long long)s.train_identities,
              (long long)s.test_identities);
  std::printf("  boxes       %lld (labeled %lld, unlabeled %lld, hard %lld)\n", (long long)s.boxes,
              (long long)s.labeled_boxes, (long long)s.unlabeled_boxes, (long long)s.hard_boxes);
  std::printf("  queries     %lld", (long long)s.queries);
  if (o.format == synth::Format::kCuhkSysu) {
    std::printf(", galleries");
    for (int n : s.gallery_sizes) std::printf(" TestG%d", n);
    if (s.gallery_sizes.empty()) std::printf(" none (the pool needs at least 51 images)");
    std::printf("; subsets: occlusion %lld, low resolution %lld", (long long)s.occlusion_queries,
                (long long)s.low_resolution_queries);
  }
  std::printf("\n");
  if (!o.preview.empty()) std::printf("  preview     %s\n", o.preview.c_str());
}

void run_synth(const SynthArgs& a) {
  synth::SynthOptions o;
  o.format = synth::parse_format(a.format);
  o.size = synth::parse_size(a.size);
  o.out = a.out;
  o.seed = a.seed;
  o.force = a.force;
  o.images = a.images;
  o.identities = a.identities;
  o.cameras = a.cameras;
  o.threads = a.threads;
  o.preview = a.preview;
  o.progress = o.size != synth::SizePreset::kTiny;
  synth::SynthStats stats;
  try {
    stats = synth::generate_dataset(o);
  } catch (const std::invalid_argument& e) {
    // Options that cannot make a dataset are usage errors (exit 2), found before any file is written.
    throw CLI::ValidationError(e.what());
  }
  print_summary(o, stats);
}

void add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Generate a synthetic dataset in the PRW or CUHK-SYSU on-disk format");
  cmd->add_option("--format", args->format, "Dataset format")->required()->check(CLI::IsMember({"prw", "cuhk-sysu"}));
  cmd->add_option("--out", args->out, "Dataset root to create")->required();
  cmd->add_option("--size", args->size, "Preset: tiny (tests), small (CPU training), medium, large (GPU training)")
      ->check(CLI::IsMember({"tiny", "small", "medium", "large"}))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed; the same seed gives byte-identical files")->capture_default_str();
  cmd->add_option("--images", args->images, "Number of images (overrides the preset)")->check(CLI::Range(1, 1000000));
  cmd->add_option("--identities", args->identities, "Number of labeled identities (overrides the preset)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--cameras", args->cameras, "PRW cameras / CUHK-SYSU scenes (overrides the preset)")
      ->check(CLI::Range(1, 1000000));
  add_threads_option(cmd, args->threads, "Rendering threads (0: all cores); output does not depend on it");
  cmd->add_option("--preview", args->preview, "Also write a PNG contact sheet of a few frames with their boxes");
  cmd->add_flag("--force", args->force, "Write into a non-empty directory, replacing a previous dataset there");
  cmd->callback([args] { run_synth(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(20, add_synth_command);

}  // namespace psearch::cli
