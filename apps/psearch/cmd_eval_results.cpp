// `psearch eval-results`: scores a results file (docs/results_format.md) written by any
// framework against the CUHK-SYSU or PRW test protocol: search mAP and top-k, detection AP
// and recall; writes metrics.json and PNG plots.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/prw.h"
#include "psearch/evaluation/detection.h"
#include "psearch/evaluation/plot.h"
#include "psearch/evaluation/results_file.h"
#include "psearch/evaluation/search.h"

namespace psearch::cli {
namespace {

struct EvalArgs {
  std::string results;
  std::string dataset;
  std::string root;
  int gallery_size = 100;
  std::string subset = "none";
  bool ignore_cam_id = true;
  double det_thresh = 0.5;
  bool cbgm = false;
  bool labeled_only = false;
  std::string det_matching = "reference";
  bool all_gallery_sizes = false;
  std::string out = "out/eval";
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// "43.31%"; `width` pads on the left for tables.
std::string percent(double v, int width = 0) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%*.2f%%", width, 100 * v);
  return buf;
}

void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j) {
  std::filesystem::create_directories(path.parent_path());
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error(tmp + ": cannot write");
  }
  std::filesystem::rename(tmp, path);
}

data::SearchSplit load_split(const EvalArgs& args, int gallery_size) {
  if (args.dataset == "prw") return data::load_prw_test(args.root, args.ignore_cam_id);
  return data::load_cuhk_sysu_test(args.root, gallery_size, data::parse_cuhk_subset(args.subset));
}

evaluation::SearchOptions search_options(const EvalArgs& args) {
  evaluation::SearchOptions options;
  options.det_thresh = args.det_thresh;
  options.cbgm = args.cbgm;
  evaluation::set_cbgm_defaults(options, args.dataset == "prw");
  return options;
}

/// Search metrics of the file at one (CUHK-SYSU) gallery size.
evaluation::SearchMetrics search_at(const EvalArgs& args, const evaluation::ResultsFile& file, int gallery_size) {
  const data::SearchSplit split = load_split(args, gallery_size);
  return evaluation::evaluate_search(split, evaluation::match_results(file, split), search_options(args));
}

nlohmann::json search_json(const evaluation::SearchMetrics& m) {
  nlohmann::json j = {{"mAP", m.mean_ap}, {"num_queries", m.queries.size()}};
  for (size_t k = 0; k < m.topk.size(); ++k) j["top" + std::to_string(m.topk[k])] = m.topk_accuracy[k];
  return j;
}

void run_eval_results(const EvalArgs& args) {
  const bool prw = args.dataset == "prw";
  auto start = std::chrono::steady_clock::now();
  const evaluation::ResultsFile file = evaluation::read_results_file(args.results);
  const double read_s = seconds_since(start);
  if (args.cbgm && file.query_context.empty())
    throw std::runtime_error(args.results + ": --cbgm needs \"query_detections\" (the detections on every query "
                                            "image, the query box first); see docs/results_format.md");

  start = std::chrono::steady_clock::now();
  const data::SearchSplit split = load_split(args, args.gallery_size);
  const double load_s = seconds_since(start);
  int64_t unused = 0;
  const evaluation::SearchInputs inputs = evaluation::match_results(file, split, &unused);

  const evaluation::SearchOptions options = search_options(args);
  start = std::chrono::steady_clock::now();
  const evaluation::SearchMetrics search = evaluation::evaluate_search(split, inputs, options);
  const double search_s = seconds_since(start);

  evaluation::DetectionOptions det_options;
  det_options.labeled_only = args.labeled_only;
  det_options.matching = args.det_matching == "greedy" ? evaluation::DetectionMatching::kGreedyByScore
                                                       : evaluation::DetectionMatching::kMutualBestIoU;
  start = std::chrono::steady_clock::now();
  const evaluation::DetectionMetrics det = evaluation::evaluate_detection(split.images, inputs.gallery, det_options);
  const double det_s = seconds_since(start);

  // Per gallery size (CUHK-SYSU).
  std::vector<std::pair<int, evaluation::SearchMetrics>> by_size;
  if (args.all_gallery_sizes) {
    for (int size : data::cuhk_gallery_sizes())
      by_size.emplace_back(size, size == args.gallery_size ? search : search_at(args, file, size));
  }

  std::string setting = prw ? std::string("PRW, ignore_cam_id ") + (args.ignore_cam_id ? "true" : "false")
                            : "CUHK-SYSU, gallery size " +
                                  (args.gallery_size == -1 ? std::string("whole pool") : std::to_string(args.gallery_size)) +
                                  (args.subset != "none" ? ", subset " + args.subset : std::string());
  std::cout << "results " << args.results << ": " << file.gallery.size() << " images, " << file.query_images.size()
            << " queries, D = " << file.dim << "\n"
            << setting << ": " << split.queries.size() << " queries over " << split.images.size() << " test images"
            << (unused > 0 ? " (" + std::to_string(unused) + " image(s) of the file not in this split, ignored)" : "")
            << "\n\n";
  std::printf("  %-34s %s\n", "metric", "value");
  std::printf("  %-34s %s\n", (std::string("search mAP") + (args.cbgm ? " (CBGM)" : "")).c_str(),
              percent(search.mean_ap, 6).c_str());
  for (size_t k = 0; k < search.topk.size(); ++k)
    std::printf("  %-34s %s\n", ("search top-" + std::to_string(search.topk[k])).c_str(),
                percent(search.topk_accuracy[k], 6).c_str());
  const std::string det_what = std::string(args.labeled_only ? "labeled boxes" : "all boxes");
  std::printf("  %-34s %s\n", ("detection AP (" + det_what + ")").c_str(), percent(det.ap, 6).c_str());
  std::printf("  %-34s %s\n", ("detection recall (" + det_what + ")").c_str(), percent(det.recall, 6).c_str());
  std::printf("\n  search: det_thresh %g; detection: IoU %g, det_thresh %g, %s matching\n", options.det_thresh,
              det_options.iou_thresh, det_options.det_thresh,
              args.det_matching == "greedy" ? "greedy-by-score" : "mutual-best-IoU (reference)");
  if (!by_size.empty()) {
    std::printf("\n  %-14s %9s %9s\n", "gallery size", "mAP", "top-1");
    for (const auto& [size, m] : by_size)
      std::printf("  %-14d %9s %9s\n", size, percent(m.mean_ap).c_str(), percent(m.topk_accuracy.at(0)).c_str());
  }
  std::printf("\n  time: read %.2f s, load split %.2f s, search %.2f s, detection %.2f s\n", read_s, load_s, search_s,
              det_s);

  // metrics.json
  nlohmann::json j;
  j["results"] = args.results;
  j["dataset"] = args.dataset;
  j["settings"] = {{"det_thresh", options.det_thresh}, {"cbgm", options.cbgm}, {"topk", options.topk}};
  if (options.cbgm) j["settings"]["cbgm_k1_k2"] = {options.cbgm_k1, options.cbgm_k2};
  if (prw) {
    j["settings"]["ignore_cam_id"] = args.ignore_cam_id;
  } else {
    j["settings"]["gallery_size"] = args.gallery_size;
    j["settings"]["subset"] = args.subset;
  }
  j["search"] = search_json(search);
  nlohmann::json curve = {{"recall", nlohmann::json::array()}, {"precision", nlohmann::json::array()},
                          {"threshold", nlohmann::json::array()}};
  const size_t points = det.curve_recall.size(), stride = std::max<size_t>(1, points / 500);
  for (size_t i = 0; i < points; i += stride) {
    const size_t k = (i + stride >= points) ? points - 1 : i;  // keep the last point
    curve["recall"].push_back(det.curve_recall[k]);
    curve["precision"].push_back(det.curve_precision[k]);
    curve["threshold"].push_back(det.curve_threshold[k]);
  }
  j["detection"] = {{"ap", det.ap},
                    {"recall", det.recall},
                    {"labeled_only", det_options.labeled_only},
                    {"iou_thresh", det_options.iou_thresh},
                    {"det_thresh", det_options.det_thresh},
                    {"matching", args.det_matching == "greedy" ? "greedy_by_score" : "mutual_best_iou"},
                    {"count_gt", det.count_gt},
                    {"count_tp", det.count_tp},
                    {"num_detections", det.num_detections},
                    {"curve", curve}};
  if (!by_size.empty()) {
    j["gallery_sizes"] = nlohmann::json::array();
    for (const auto& [size, m] : by_size) {
      auto entry = search_json(m);
      entry["gallery_size"] = size;
      j["gallery_sizes"].push_back(entry);
    }
  }
  j["queries"] = nlohmann::json::array();
  for (size_t q = 0; q < split.queries.size(); ++q) {
    const auto& r = search.queries[q];
    nlohmann::json e = {{"image", split.images[split.queries[q].image].name},
                        {"pid", split.queries[q].pid},
                        {"ap", r.ap},
                        {"count_gt", r.count_gt},
                        {"count_tp", r.count_tp},
                        {"num_detections", r.num_detections}};
    for (size_t k = 0; k < search.topk.size(); ++k) e["top" + std::to_string(search.topk[k])] = r.hits[k];
    j["queries"].push_back(e);
  }
  const std::filesystem::path out(args.out);
  write_json_atomically(out / "metrics.json", j);

  // Plots.
  evaluation::PlotSpec pr;
  pr.title = std::string(prw ? "PRW" : "CUHK-SYSU") + " detection: precision-recall (IoU 0.5)";
  pr.x_label = "recall";
  pr.y_label = "precision";
  pr.percent_ticks = true;
  evaluation::PlotSeries curve_series;
  curve_series.label = "AP " + percent(det.ap) + ", recall " + percent(det.recall) + " (" + det_what + ")";
  if (!det.curve_recall.empty()) {  // from recall 0 at the first precision
    curve_series.x.push_back(0.0);
    curve_series.y.push_back(det.curve_precision.front());
  }
  curve_series.x.insert(curve_series.x.end(), det.curve_recall.begin(), det.curve_recall.end());
  curve_series.y.insert(curve_series.y.end(), det.curve_precision.begin(), det.curve_precision.end());
  curve_series.steps = true;
  evaluation::save_line_plot((out / "detection_pr.png").string(), pr, {curve_series});
  std::cout << "\nwrote " << (out / "metrics.json").string() << ", " << (out / "detection_pr.png").string();

  if (!by_size.empty()) {
    evaluation::PlotSpec g;
    g.title = "CUHK-SYSU search: accuracy against gallery size";
    g.x_label = "gallery size (log scale)";
    g.y_label = "accuracy";
    g.log_x = true;
    g.x_min = 40;
    g.x_max = 5000;
    g.percent_ticks = true;
    double lo = 1.0;
    for (const auto& [size, m] : by_size) {
      g.x_ticks.push_back(size);
      lo = std::min({lo, m.mean_ap, m.topk_accuracy.at(0)});
    }
    g.y_min = std::max(0.0, std::floor(lo * 10 - 0.5) / 10);
    g.y_max = 1.0;
    evaluation::PlotSeries map_series, top1_series;
    map_series.label = "mAP";
    top1_series.label = "top-1";
    top1_series.bgr = {14, 127, 255};
    map_series.markers = top1_series.markers = true;
    for (const auto& [size, m] : by_size) {
      map_series.x.push_back(size);
      map_series.y.push_back(m.mean_ap);
      top1_series.x.push_back(size);
      top1_series.y.push_back(m.topk_accuracy.at(0));
    }
    evaluation::save_line_plot((out / "map_vs_gallery_size.png").string(), g, {map_series, top1_series});
    std::cout << ", " << (out / "map_vs_gallery_size.png").string();
  }
  std::cout << "\n";
}

void add_eval_results_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval-results", "Score a results file (docs/results_format.md) with the CUHK-SYSU / PRW search protocol");
  cmd->add_option("results", args->results, "torch.save file in the psearch-results/1 format")->required();
  cmd->add_option("--dataset", args->dataset, "prw or cuhk-sysu")
      ->required()
      ->check(CLI::IsMember({"prw", "cuhk-sysu"}));
  cmd->add_option("--root", args->root, "Dataset root in its original layout")->required();
  auto* gallery = cmd->add_option("--gallery-size", args->gallery_size,
                                  "CUHK-SYSU gallery size: 50, 100, 500, 1000, 2000, 4000, or -1 (whole pool)")
                      ->capture_default_str()
                      ->check(CLI::IsMember({50, 100, 500, 1000, 2000, 4000, -1}));
  auto* subset = cmd->add_option("--subset", args->subset, "CUHK-SYSU query subset: none, occlusion, low_resolution")
                     ->capture_default_str()
                     ->check(CLI::IsMember({"none", "occlusion", "low_resolution", "low-resolution", "resolution"}));
  auto* cam = cmd->add_option("--ignore-cam-id", args->ignore_cam_id,
                              "PRW: keep the query camera's frames in the gallery (true, as published) or not")
                  ->capture_default_str();
  cmd->add_option("--det-thresh", args->det_thresh, "Gallery detections scoring >= this are searched")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--cbgm", args->cbgm, "Context Bipartite Graph Matching (needs query_detections in the file)");
  cmd->add_flag("--labeled-only", args->labeled_only, "Detection metrics over boxes with an identity only");
  cmd->add_option("--det-matching", args->det_matching,
                  "Detection matching: reference (mutual best IoU, as OIM/NAE/SeqNet) or greedy (by score)")
      ->capture_default_str()
      ->check(CLI::IsMember({"reference", "greedy"}));
  auto* all = cmd->add_flag("--all-gallery-sizes", args->all_gallery_sizes,
                            "CUHK-SYSU: also evaluate gallery sizes 50..4000 and plot mAP against them");
  cmd->add_option("--out", args->out, "Output folder for metrics.json and the plots")->capture_default_str();
  cmd->callback([args, gallery, subset, cam, all] {
    if (args->dataset == "prw") {
      for (const auto* opt : {gallery, subset, all})
        if (opt->count() > 0) throw CLI::ValidationError(opt->get_name(), "applies to cuhk-sysu only");
    } else if (cam->count() > 0) {
      throw CLI::ValidationError(cam->get_name(), "applies to prw only");
    } else if (args->all_gallery_sizes && args->subset != "none") {
      throw CLI::ValidationError(all->get_name(), "does not apply to a query subset");
    }
    run_eval_results(*args);
  });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(40, add_eval_results_command);

}  // namespace psearch::cli
