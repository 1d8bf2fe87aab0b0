#include "eval_report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/prw.h"
#include "psearch/evaluation/detection.h"
#include "psearch/evaluation/plot.h"
#include "psearch/evaluation/search.h"
#include "psearch/util/atomic_file.h"

namespace psearch::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// "43.31%"; `width` pads on the left for tables.
std::string percent(double v, int width = 0) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%*.2f%%", width, 100 * v);
  return buf;
}

data::SearchSplit load_split(const EvalSettings& s, int gallery_size) {
  if (s.dataset == "prw") return data::load_prw_test(s.root, s.ignore_cam_id);
  return data::load_cuhk_sysu_test(s.root, gallery_size, data::parse_cuhk_subset(s.subset));
}

evaluation::SearchOptions search_options(const EvalSettings& s) {
  evaluation::SearchOptions options;
  options.det_thresh = s.det_thresh;
  options.cbgm = s.cbgm;
  evaluation::set_cbgm_defaults(options, s.dataset == "prw");
  return options;
}

evaluation::DetectionOptions detection_options(const EvalSettings& s) {
  evaluation::DetectionOptions options;
  options.labeled_only = s.labeled_only;
  options.matching = s.det_matching == "greedy" ? evaluation::DetectionMatching::kGreedyByScore
                                                : evaluation::DetectionMatching::kMutualBestIoU;
  return options;
}

/// Everything one evaluation produced, for the table, the JSON and the plots.
struct Report {
  data::SearchSplit split;
  evaluation::SearchOptions search_options;
  evaluation::DetectionOptions detection_options;
  evaluation::SearchMetrics search;
  evaluation::DetectionMetrics detection;
  std::vector<std::pair<int, evaluation::SearchMetrics>> by_gallery_size;  ///< CUHK-SYSU, optional
  int64_t unused_images = 0;
  double load_s = 0, search_s = 0, detection_s = 0;
};

Report evaluate(const EvalSettings& s, const evaluation::ResultsFile& results) {
  Report r;
  auto start = std::chrono::steady_clock::now();
  r.split = load_split(s, s.gallery_size);
  r.load_s = seconds_since(start);
  const evaluation::SearchInputs inputs = evaluation::match_results(results, r.split, &r.unused_images);
  r.search_options = search_options(s);
  start = std::chrono::steady_clock::now();
  r.search = evaluation::evaluate_search(r.split, inputs, r.search_options);
  r.search_s = seconds_since(start);
  r.detection_options = detection_options(s);
  start = std::chrono::steady_clock::now();
  r.detection = evaluation::evaluate_detection(r.split.images, inputs.gallery, r.detection_options);
  r.detection_s = seconds_since(start);
  if (s.all_gallery_sizes) {
    for (int size : data::cuhk_gallery_sizes()) {
      if (size == s.gallery_size) {
        r.by_gallery_size.emplace_back(size, r.search);
        continue;
      }
      const data::SearchSplit split = load_split(s, size);
      r.by_gallery_size.emplace_back(
          size, evaluation::evaluate_search(split, evaluation::match_results(results, split), r.search_options));
    }
  }
  return r;
}

std::string setting_text(const EvalSettings& s) {
  if (s.dataset == "prw") return std::string("PRW, ignore_cam_id ") + (s.ignore_cam_id ? "true" : "false");
  return "CUHK-SYSU, gallery size " + (s.gallery_size == -1 ? std::string("whole pool") : std::to_string(s.gallery_size)) +
         (s.subset != "none" ? ", subset " + s.subset : std::string());
}

std::string detection_scope(const EvalSettings& s) { return s.labeled_only ? "labeled boxes" : "all boxes"; }

void print_table(const EvalSettings& s, const evaluation::ResultsFile& results, const std::string& source,
                 const Report& r) {
  std::cout << source << ": " << results.gallery.size() << " images, " << results.query_images.size()
            << " queries, D = " << results.dim << "\n"
            << setting_text(s) << ": " << r.split.queries.size() << " queries over " << r.split.images.size()
            << " test images"
            << (r.unused_images > 0 ? " (" + std::to_string(r.unused_images) + " image(s) not in this split, ignored)"
                                    : "")
            << "\n\n";
  std::printf("  %-34s %s\n", "metric", "value");
  std::printf("  %-34s %s\n", (std::string("search mAP") + (s.cbgm ? " (CBGM)" : "")).c_str(),
              percent(r.search.mean_ap, 6).c_str());
  for (size_t k = 0; k < r.search.topk.size(); ++k)
    std::printf("  %-34s %s\n", ("search top-" + std::to_string(r.search.topk[k])).c_str(),
                percent(r.search.topk_accuracy[k], 6).c_str());
  std::printf("  %-34s %s\n", ("detection AP (" + detection_scope(s) + ")").c_str(), percent(r.detection.ap, 6).c_str());
  std::printf("  %-34s %s\n", ("detection recall (" + detection_scope(s) + ")").c_str(),
              percent(r.detection.recall, 6).c_str());
  std::printf("\n  search: det_thresh %g; detection: IoU %g, det_thresh %g, %s matching\n", r.search_options.det_thresh,
              r.detection_options.iou_thresh, r.detection_options.det_thresh,
              s.det_matching == "greedy" ? "greedy-by-score" : "mutual-best-IoU (reference)");
  if (!r.by_gallery_size.empty()) {
    std::printf("\n  %-14s %9s %9s\n", "gallery size", "mAP", "top-1");
    for (const auto& [size, m] : r.by_gallery_size)
      std::printf("  %-14d %9s %9s\n", size, percent(m.mean_ap).c_str(), percent(m.topk_accuracy.at(0)).c_str());
  }
  std::printf("\n  time: load split %.2f s, search %.2f s, detection %.2f s\n", r.load_s, r.search_s, r.detection_s);
}

nlohmann::json search_json(const evaluation::SearchMetrics& m) {
  nlohmann::json j = {{"mAP", m.mean_ap}, {"num_queries", m.queries.size()}};
  for (size_t k = 0; k < m.topk.size(); ++k) j["top" + std::to_string(m.topk[k])] = m.topk_accuracy[k];
  return j;
}

nlohmann::json detection_json(const EvalSettings& s, const Report& r) {
  const auto& det = r.detection;
  nlohmann::json curve = {{"recall", nlohmann::json::array()}, {"precision", nlohmann::json::array()},
                          {"threshold", nlohmann::json::array()}};
  const size_t points = det.curve_recall.size(), stride = std::max<size_t>(1, points / 500);
  for (size_t i = 0; i < points; i += stride) {
    const size_t k = (i + stride >= points) ? points - 1 : i;  // keep the last point
    curve["recall"].push_back(det.curve_recall[k]);
    curve["precision"].push_back(det.curve_precision[k]);
    curve["threshold"].push_back(det.curve_threshold[k]);
  }
  return {{"ap", det.ap},
          {"recall", det.recall},
          {"labeled_only", r.detection_options.labeled_only},
          {"iou_thresh", r.detection_options.iou_thresh},
          {"det_thresh", r.detection_options.det_thresh},
          {"matching", s.det_matching == "greedy" ? "greedy_by_score" : "mutual_best_iou"},
          {"count_gt", det.count_gt},
          {"count_tp", det.count_tp},
          {"num_detections", det.num_detections},
          {"curve", curve}};
}

nlohmann::json queries_json(const Report& r) {
  nlohmann::json queries = nlohmann::json::array();
  for (size_t q = 0; q < r.split.queries.size(); ++q) {
    const auto& result = r.search.queries[q];
    nlohmann::json e = {{"image", r.split.images[r.split.queries[q].image].name},
                        {"pid", r.split.queries[q].pid},
                        {"ap", result.ap},
                        {"count_gt", result.count_gt},
                        {"count_tp", result.count_tp},
                        {"num_detections", result.num_detections}};
    for (size_t k = 0; k < r.search.topk.size(); ++k) e["top" + std::to_string(r.search.topk[k])] = result.hits[k];
    queries.push_back(e);
  }
  return queries;
}

nlohmann::json metrics_json(const EvalSettings& s, const std::string& source, const Report& r) {
  nlohmann::json j;
  j["results"] = source;  // the results file, or for psearch eval the model that produced them
  j["dataset"] = s.dataset;
  j["settings"] = {{"det_thresh", r.search_options.det_thresh}, {"cbgm", r.search_options.cbgm},
                   {"topk", r.search_options.topk}};
  if (r.search_options.cbgm) j["settings"]["cbgm_k1_k2"] = {r.search_options.cbgm_k1, r.search_options.cbgm_k2};
  if (s.dataset == "prw") {
    j["settings"]["ignore_cam_id"] = s.ignore_cam_id;
  } else {
    j["settings"]["gallery_size"] = s.gallery_size;
    j["settings"]["subset"] = s.subset;
  }
  j["search"] = search_json(r.search);
  j["detection"] = detection_json(s, r);
  if (!r.by_gallery_size.empty()) {
    j["gallery_sizes"] = nlohmann::json::array();
    for (const auto& [size, m] : r.by_gallery_size) {
      auto entry = search_json(m);
      entry["gallery_size"] = size;
      j["gallery_sizes"].push_back(entry);
    }
  }
  j["queries"] = queries_json(r);
  return j;
}

void save_pr_plot(const EvalSettings& s, const Report& r, const std::string& path) {
  const auto& det = r.detection;
  evaluation::PlotSpec pr;
  pr.title = std::string(s.dataset == "prw" ? "PRW" : "CUHK-SYSU") + " detection: precision-recall (IoU 0.5)";
  pr.x_label = "recall";
  pr.y_label = "precision";
  pr.percent_ticks = true;
  evaluation::PlotSeries curve;
  curve.label = "AP " + percent(det.ap) + ", recall " + percent(det.recall) + " (" + detection_scope(s) + ")";
  if (!det.curve_recall.empty()) {  // from recall 0 at the first precision
    curve.x.push_back(0.0);
    curve.y.push_back(det.curve_precision.front());
  }
  curve.x.insert(curve.x.end(), det.curve_recall.begin(), det.curve_recall.end());
  curve.y.insert(curve.y.end(), det.curve_precision.begin(), det.curve_precision.end());
  curve.steps = true;
  evaluation::save_line_plot(path, pr, {curve});
}

void save_gallery_size_plot(const Report& r, const std::string& path) {
  evaluation::PlotSpec g;
  g.title = "CUHK-SYSU search: accuracy against gallery size";
  g.x_label = "gallery size (log scale)";
  g.y_label = "accuracy";
  g.log_x = true;
  g.x_min = 40;
  g.x_max = 5000;
  g.percent_ticks = true;
  double lo = 1.0;
  for (const auto& [size, m] : r.by_gallery_size) {
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
  for (const auto& [size, m] : r.by_gallery_size) {
    map_series.x.push_back(size);
    map_series.y.push_back(m.mean_ap);
    top1_series.x.push_back(size);
    top1_series.y.push_back(m.topk_accuracy.at(0));
  }
  evaluation::save_line_plot(path, g, {map_series, top1_series});
}

}  // namespace

std::function<void()> add_protocol_options(CLI::App* cmd, const std::shared_ptr<EvalSettings>& args) {
  cmd->add_option("--dataset", args->dataset, "prw or cuhk-sysu")->required()->check(CLI::IsMember({"prw", "cuhk-sysu"}));
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
  auto* det = cmd->add_option("--det-thresh", args->det_thresh, "Gallery detections scoring >= this are searched")
                  ->capture_default_str()
                  ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--cbgm", args->cbgm, "Context Bipartite Graph Matching re-scoring");
  cmd->add_flag("--labeled-only", args->labeled_only, "Detection metrics over boxes with an identity only");
  cmd->add_option("--det-matching", args->det_matching,
                  "Detection matching: reference (mutual best IoU, as OIM/NAE/SeqNet) or greedy (by score)")
      ->capture_default_str()
      ->check(CLI::IsMember({"reference", "greedy"}));
  auto* all = cmd->add_flag("--all-gallery-sizes", args->all_gallery_sizes,
                            "CUHK-SYSU: also evaluate gallery sizes 50..4000 and plot mAP against them");
  cmd->add_option("--out", args->out, "Output folder for metrics.json and the plots")->capture_default_str();
  return [args, gallery, subset, cam, all, det] {
    args->det_thresh_given = det->count() > 0;
    if (args->dataset == "prw") {
      for (const auto* opt : {gallery, subset, all})
        if (opt->count() > 0) throw CLI::ValidationError(opt->get_name(), "applies to cuhk-sysu only");
    } else if (cam->count() > 0) {
      throw CLI::ValidationError(cam->get_name(), "applies to prw only");
    } else if (args->all_gallery_sizes && args->subset != "none") {
      throw CLI::ValidationError(all->get_name(), "does not apply to a query subset");
    }
    // Before the (possibly long) model run, not after it.
    util::ensure_writable_directory(args->out);
  };
}

data::SearchSplit load_test_split(const EvalSettings& settings) {
  return load_split(settings, settings.all_gallery_sizes ? -1 : settings.gallery_size);
}

void evaluate_and_report(const EvalSettings& s, const evaluation::ResultsFile& results, const std::string& source) {
  if (s.cbgm && results.query_context.empty())
    throw std::runtime_error(source + ": --cbgm needs the detections on every query image (\"query_detections\", "
                                      "the query box first); see docs/results_format.md");
  const Report r = evaluate(s, results);
  print_table(s, results, source, r);
  const std::filesystem::path out(s.out);
  util::write_text_atomically((out / "metrics.json").string(), metrics_json(s, source, r).dump(2) + "\n");
  save_pr_plot(s, r, (out / "detection_pr.png").string());
  std::cout << "\nwrote " << (out / "metrics.json").string() << ", " << (out / "detection_pr.png").string();
  if (!r.by_gallery_size.empty()) {
    save_gallery_size_plot(r, (out / "map_vs_gallery_size.png").string());
    std::cout << ", " << (out / "map_vs_gallery_size.png").string();
  }
  std::cout << "\n";
}

}  // namespace psearch::cli
