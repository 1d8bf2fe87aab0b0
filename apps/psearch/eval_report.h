#pragma once
// What `psearch eval` (a model) and `psearch eval-results` (a results file) share: the
// protocol options, loading the test split, scoring, and the report (table, metrics.json,
// PNG plots).
#include <CLI/CLI.hpp>

#include <functional>

#include <memory>
#include <string>

#include "psearch/data/dataset.h"
#include "psearch/evaluation/results_file.h"

namespace psearch::cli {

/// The evaluation protocol as chosen on the command line.
struct EvalSettings {
  std::string dataset;  ///< "prw" or "cuhk-sysu"
  std::string root;
  int gallery_size = 100;
  std::string subset = "none";
  bool ignore_cam_id = true;
  double det_thresh = 0.5;
  bool det_thresh_given = false;  ///< --det-thresh was on the command line (else a model may set it)
  bool cbgm = false;
  bool labeled_only = false;
  std::string det_matching = "reference";
  bool all_gallery_sizes = false;
  std::string out = "out/eval";
};

/// Adds --dataset, --root, --gallery-size, --subset, --ignore-cam-id, --det-thresh, --cbgm,
/// --labeled-only, --det-matching, --all-gallery-sizes and --out to `cmd`. The returned
/// check throws CLI::ValidationError (a usage error, exit 2) for options that do not apply
/// to the chosen dataset; call it first in the command's callback.
std::function<void()> add_protocol_options(CLI::App* cmd, const std::shared_ptr<EvalSettings>& settings);

/// The test split the settings name (for --all-gallery-sizes: the whole pool, which holds
/// every gallery of every size).
data::SearchSplit load_test_split(const EvalSettings& settings);

/// Scores `results` against the protocol, prints the table and writes metrics.json and the
/// plots into settings.out. `source` names what was evaluated (a file, a model).
void evaluate_and_report(const EvalSettings& settings, const evaluation::ResultsFile& results,
                         const std::string& source);

}  // namespace psearch::cli
