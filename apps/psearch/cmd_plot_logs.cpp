// `psearch plot-logs`: one PNG of a logged value (the loss by default) against the
// iteration for several training runs, e.g. fp32 against bf16 (docs/training.md).
//   psearch plot-logs out/fp32 out/bf16 --key loss --smooth 10 --out curves.png
#include <algorithm>
#include <array>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "commands.h"
#include "psearch/evaluation/plot.h"

namespace psearch::cli {
namespace {

struct PlotLogsArgs {
  std::vector<std::string> runs;
  std::string key = "loss";
  std::string out = "curves.png";
  int smooth = 1;
};

/// (iteration, value) pairs of `key` from <run>/log.jsonl, in file order.
evaluation::PlotSeries read_series(const std::string& run, const std::string& key) {
  const std::string path = run + "/log.jsonl";
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot be read (is " + run + " a training output folder?)");
  evaluation::PlotSeries series;
  series.label = run.substr(run.find_last_of('/') == std::string::npos ? 0 : run.find_last_of('/') + 1);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::json entry;
    try {
      entry = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error(path + ": line " + std::to_string(number) + " is not JSON");
    }
    if (!entry.contains(key) || !entry.contains("iteration")) continue;
    series.x.push_back(entry["iteration"].get<double>());
    series.y.push_back(entry[key].get<double>());
  }
  if (series.x.empty()) throw std::runtime_error(path + ": holds no '" + key + "' values");
  return series;
}

/// Trailing moving average over `window` points (the first points average what exists).
void smooth(evaluation::PlotSeries& series, int window) {
  std::vector<double> out(series.y.size());
  double sum = 0;
  for (size_t i = 0; i < series.y.size(); ++i) {
    sum += series.y[i];
    if (i >= static_cast<size_t>(window)) sum -= series.y[i - window];
    out[i] = sum / static_cast<double>(std::min<size_t>(i + 1, window));
  }
  series.y = out;
}

void run_plot_logs(const PlotLogsArgs& args) {
  static const std::array<std::array<uint8_t, 3>, 6> kColors{
      {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214}, {189, 103, 148}, {75, 86, 140}}};
  std::vector<evaluation::PlotSeries> all;
  evaluation::PlotSpec spec;
  spec.title = args.key + (args.smooth > 1 ? " (moving average of " + std::to_string(args.smooth) + ")" : "");
  spec.x_label = "iteration";
  spec.y_label = args.key;
  spec.x_min = spec.y_min = std::numeric_limits<double>::infinity();
  spec.x_max = spec.y_max = -std::numeric_limits<double>::infinity();
  for (const std::string& run : args.runs) {
    evaluation::PlotSeries s = read_series(run, args.key);
    if (args.smooth > 1) smooth(s, args.smooth);
    s.bgr = kColors[all.size() % kColors.size()];
    spec.x_min = std::min(spec.x_min, *std::min_element(s.x.begin(), s.x.end()));
    spec.x_max = std::max(spec.x_max, *std::max_element(s.x.begin(), s.x.end()));
    spec.y_min = std::min(spec.y_min, *std::min_element(s.y.begin(), s.y.end()));
    spec.y_max = std::max(spec.y_max, *std::max_element(s.y.begin(), s.y.end()));
    all.push_back(std::move(s));
  }
  if (spec.x_max <= spec.x_min) spec.x_max = spec.x_min + 1;
  const double margin = std::max(1e-9, 0.05 * (spec.y_max - spec.y_min));
  spec.y_min -= margin, spec.y_max += margin;
  evaluation::save_line_plot(args.out, spec, all);
  std::cout << "wrote " << args.out << "\n";
}

void add_plot_logs_command(CLI::App& app) {
  auto args = std::make_shared<PlotLogsArgs>();
  auto* cmd = app.add_subcommand("plot-logs", "Plot a logged value (loss, a loss term, grad_norm, ...) of training runs against the iteration");
  cmd->add_option("runs", args->runs, "Training output folders (their log.jsonl)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--key", args->key, "log.jsonl field to plot, e.g. loss, loss_reid, grad_norm")->capture_default_str();
  cmd->add_option("--smooth", args->smooth, "Moving average over this many log points")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--out", args->out, "PNG to write")->capture_default_str();
  cmd->callback([args] { run_plot_logs(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(36, add_plot_logs_command);

}  // namespace psearch::cli
