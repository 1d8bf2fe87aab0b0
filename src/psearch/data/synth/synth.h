#pragma once
/// `psearch synth`: synthetic person-search datasets written in exactly the on-disk
/// formats of PRW and CUHK-SYSU (see docs/synthetic_data.md), so every loader, the
/// evaluation protocol and training runs can be exercised without the real data.
#include <cstdint>
#include <string>
#include <vector>

#include "psearch/data/synth/plan.h"

namespace psearch::data::synth {

struct SynthOptions {
  Format format = Format::kPrw;
  SizePreset size = SizePreset::kSmall;
  std::string out;        ///< dataset root to create
  uint64_t seed = 0;
  bool force = false;     ///< allow a non-empty `out` (our own entries there are replaced)
  int images = 0;         ///< overrides of the preset; 0 keeps it
  int identities = 0;
  int cameras = 0;
  int threads = 0;        ///< 0: all hardware threads
  std::string preview;    ///< PNG contact sheet of a few frames with their boxes, if set
  bool progress = false;  ///< progress line on stderr
};

/// What was written, for the command's summary and the dataset's synth_info.json.
struct SynthStats {
  int64_t images = 0, train_images = 0, test_images = 0;
  int64_t identities = 0, train_identities = 0, test_identities = 0;
  int64_t boxes = 0, labeled_boxes = 0, unlabeled_boxes = 0, hard_boxes = 0;
  int64_t distractor_images = 0, test_distractor_images = 0;
  int64_t queries = 0;
  int64_t occlusion_queries = 0, low_resolution_queries = 0;  ///< CUHK-SYSU query subsets
  std::vector<int> gallery_sizes;  ///< CUHK-SYSU TestG{N} files written
  std::vector<std::string> alternate_variables;  ///< PRW files using anno_file / anno_previous
  double seconds = 0;
};

Format parse_format(const std::string& text);     ///< "prw" or "cuhk-sysu"
SizePreset parse_size(const std::string& text);   ///< "tiny", "small", "medium", "large"
std::string format_name(Format format);
std::string size_name(SizePreset size);

/// The plan configuration for `options` (preset plus overrides).
PlanConfig resolve_config(const SynthOptions& options);

/// Generates the dataset into options.out. Throws std::invalid_argument for impossible
/// options and std::runtime_error (naming the path) for I/O failures.
SynthStats generate_dataset(const SynthOptions& options);

}  // namespace psearch::data::synth
