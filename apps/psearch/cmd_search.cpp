// `psearch search`: finds a person in a gallery (psearch index), from a box in a query
// image or from a stored detection, and prints the hits as JSON and writes an HTML report:
//   psearch search --gallery out/vtest.db --image q.jpg --box 200 120 260 300 --top-k 20 --report out/search
//   psearch search --gallery out/vtest.db --id 42 --camera walkway --from 10 --to 60 --min-similarity 0.6
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <tuple>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/image_io.h"
#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/query.h"
#include "psearch/gallery/report.h"
#include "psearch/gallery/searcher.h"
#include "psearch/util/atomic_file.h"

namespace psearch::cli {
namespace {

struct SearchArgs {
  std::string gallery, image, checkpoint, report, json, pick, index = "exact", device = "cpu";
  std::vector<double> box;
  int64_t id = -1;
  gallery::SearchFilter filter;
  double from = -1, to = -1;
  int64_t top_k = 20;
  double min_similarity = -1.0;
  bool cbgm = false;
  int64_t cbgm_k1 = 30, cbgm_k2 = 4;
  int threads = 0;
};

/// "CAMERA:FRAME[:N]" -> camera, frame, N (default 0: the most confident person).
std::tuple<std::string, int64_t, int64_t> parse_pick(const std::string& text) {
  const size_t first = text.find(':');
  const size_t second = first == std::string::npos ? std::string::npos : text.find(':', first + 1);
  try {
    if (first == std::string::npos || first == 0) throw std::invalid_argument("no camera");
    size_t used = 0;
    const std::string frame_text = text.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
    const int64_t frame = std::stoll(frame_text, &used);
    if (used != frame_text.size() || frame < 0) throw std::invalid_argument("frame");
    int64_t rank = 0;
    if (second != std::string::npos) {
      const std::string rank_text = text.substr(second + 1);
      rank = std::stoll(rank_text, &used);
      if (used != rank_text.size() || rank < 0) throw std::invalid_argument("rank");
    }
    return {text.substr(0, first), frame, rank};
  } catch (const std::logic_error&) {
    throw CLI::ValidationError("--pick", "'" + text + "': expected CAMERA:FRAME or CAMERA:FRAME:N, e.g. walkway:200");
  }
}

void run_search(SearchArgs args) {
  apply_threads(args.threads);
  c10::NoGradGuard no_grad;
  if ((!args.image.empty()) + (args.id >= 0) + (!args.pick.empty()) != 1)
    throw CLI::ValidationError("search", "give one of --image and --box, --id, or --pick");
  if (!args.image.empty() && args.box.size() != 4) throw CLI::ValidationError("--box", "--image needs --box X1 Y1 X2 Y2");
  if (args.from >= 0) args.filter.time_from = args.from;
  if (args.to >= 0) args.filter.time_to = args.to;
  if (!args.report.empty()) util::ensure_writable_directory(args.report);

  gallery::GalleryStore store(args.gallery, gallery::GalleryStore::Mode::kRead);
  const auto recorded = store.model();
  if (!recorded) throw std::runtime_error(args.gallery + ": the gallery holds no detection; add video with psearch index first");
  gallery::Query query;
  if (!args.image.empty()) {
    query = gallery::query_from_image(args.image, args.box, *recorded, args.checkpoint, parse_device(args.device),
                                      args.cbgm);
  } else if (args.id >= 0) {
    query = gallery::query_from_detection(store, args.id, args.cbgm);
  } else {
    const auto [camera, frame, rank] = parse_pick(args.pick);
    query = gallery::query_from_frame(store, camera, frame, rank, args.cbgm);
  }
  gallery::GallerySearcher searcher(store, gallery::index_kind_from_string(args.index));
  if (searcher.index().kind() == gallery::IndexKind::kApproximate)
    std::cerr << "approximate index over " << searcher.index().size() << " detections: recall@" << args.top_k << " "
              << std::setprecision(3) << searcher.index().recall_at_k(args.top_k) << " against the exact scan (100 "
              << "stored embeddings as queries)"
              << (searcher.from_cache() ? "; index read from " + args.gallery + ".ivf" : std::string()) << "\n";
  gallery::SearchRequest request;
  request.query = query.embedding;
  request.filter = args.filter;
  request.top_k = args.top_k;
  request.min_similarity = args.min_similarity;
  request.exclude_id = query.detection_id;
  request.context = query.context;
  request.cbgm_k1 = args.cbgm_k1;
  request.cbgm_k2 = args.cbgm_k2;
  const std::vector<gallery::SearchHit> hits = searcher.search(request);

  // One hit per line: readable in a terminal, still one JSON document.
  std::string text = "{\"query\": " + nlohmann::json(query.description).dump() + ",\n \"hits\": [";
  const nlohmann::json out = gallery::hits_json(hits);
  for (size_t i = 0; i < out.size(); ++i) text += (i ? ",\n  " : "\n  ") + out[i].dump();
  text += out.empty() ? "]}\n" : "\n ]}\n";
  if (!args.json.empty()) util::write_text_atomically(args.json, text);
  std::cout << text;
  if (!args.report.empty()) {
    gallery::ReportQuery rq{query.description, query.image, {}};
    std::copy(query.box, query.box + 4, rq.box);
    std::cerr << "report: " << gallery::write_report(args.report, rq, hits, args.gallery) << "\n";
  }
}

void add_search_command(CLI::App& app) {
  auto args = std::make_shared<SearchArgs>();
  auto* cmd = app.add_subcommand("search", "Find a person in a gallery: JSON hits and an HTML report");
  cmd->add_option("--gallery", args->gallery, "Gallery file (psearch index)")->required();
  auto* image = cmd->add_option("--image", args->image, "Query image (with --box)");
  cmd->add_option("--box", args->box, "Query box X1 Y1 X2 Y2 in --image pixels")->expected(4)->needs(image);
  cmd->add_option("--id", args->id, "Search from a stored detection (its id in the JSON or report)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 62))
      ->excludes(image);
  cmd->add_option("--pick", args->pick,
                  "Search from the N-th most confident stored person (0: the most) of a frame: CAMERA:FRAME[:N]")
      ->excludes(image);
  cmd->add_option("--camera", args->filter.cameras, "Only these cameras (repeat for several)");
  cmd->add_option("--from", args->from, "Only detections at or after this time (s from the start of their source)")
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--to", args->to, "Only detections at or before this time (s)")->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--top-k", args->top_k, "Hits to return")->check(CLI::Range(int64_t{1}, int64_t{10000}))->capture_default_str();
  cmd->add_option("--min-similarity", args->min_similarity, "Drop hits below this cosine similarity")
      ->check(CLI::Range(-1.0, 1.0));
  cmd->add_flag("--cbgm", args->cbgm,
                "Re-rank with Context Bipartite Graph Matching: the people around the query vote (SeqNet)");
  cmd->add_option("--cbgm-k1", args->cbgm_k1, "CBGM: frames of the k1 best hits are re-scored")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  cmd->add_option("--cbgm-k2", args->cbgm_k2, "CBGM: people of the query image used (query first)")
      ->check(CLI::Range(int64_t{1}, int64_t{100}))
      ->capture_default_str();
  cmd->add_option("--index", args->index, "exact (FAISS flat) or approximate (FAISS IVF-flat)")
      ->check(CLI::IsMember({"exact", "approximate"}))
      ->capture_default_str();
  cmd->add_option("--checkpoint", args->checkpoint, "The gallery's checkpoint, when it moved since indexing");
  cmd->add_option("--report", args->report, "Write DIR/report.html with pictures");
  cmd->add_option("--json", args->json, "Also write the JSON to this file");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_search(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(41, add_search_command);

}  // namespace psearch::cli
