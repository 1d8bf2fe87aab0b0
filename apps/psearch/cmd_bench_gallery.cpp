// `psearch bench-gallery`: how fast a gallery answers and fills.
//   psearch bench-gallery                      # search latency at 10k, 100k, 1M detections
//   psearch bench-gallery --video /usr/share/doc/opencv-doc/examples/data/vtest.avi [--checkpoint C]
// Search: random clustered unit vectors (people seen 200 times each, as in video: each
// sighting = the person's unit centre + noise of norm 0.8, cosine ~0.6 between sightings,
// ~0 between people) in FAISS's exact flat index and in the approximate IVF-flat index: build time,
// latency of one query and per query in batches, recall@k of the approximate index against
// the exact one, and this machine's memory read bandwidth, the bound of an exact scan.
// Indexing: frames/s of `psearch index`'s path on a video for the separate pipeline and,
// with --checkpoint, a trained joint model.
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/sum.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/synth/files.h"
#include "psearch/gallery/indexer.h"
#include "psearch/gallery/vector_index.h"

namespace psearch::cli {
namespace {

struct BenchArgs {
  std::vector<int64_t> sizes{10000, 100000, 1000000};
  int64_t dim = 256, queries = 64, top_k = 100, batch = 64, approximate_max = 1000000;
  std::string video, checkpoint, device = "cpu";
  int64_t frames = 60;
  int threads = 0;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// n unit vectors of n / 200 people (200 sightings each), and queries of the same people.
std::pair<at::Tensor, at::Tensor> clustered(int64_t n, int64_t dim, int64_t queries) {
  const int64_t identities = std::max<int64_t>(n / 200, 1);
  at::Tensor centres = at::randn({identities, dim});
  centres = centres / centres.norm(2, {1}, true);
  const double noise = 0.8 / std::sqrt(static_cast<double>(dim));
  auto sample = [&](int64_t count) {
    const at::Tensor who = at::randint(identities, {count}, at::kLong);
    at::Tensor x = centres.index_select(0, who) + noise * at::randn({count, dim});
    return (x / x.norm(2, {1}, true)).contiguous();
  };
  return {sample(n), sample(queries)};
}

/// GB/s of reading a 512 MB tensor (sum), best of 5: what an exact scan can at most reach.
double read_bandwidth() {
  const at::Tensor big = at::randn({128 * 1024 * 1024});
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t = Clock::now();
    volatile float s = at::sum(big).item<float>();
    (void)s;
    best = std::max(best, big.nbytes() / seconds_since(t) / 1e9);
  }
  return best;
}

void bench_search(const BenchArgs& args) {
  std::cout << "search: " << args.dim << "-d embeddings, top-" << args.top_k << ", " << args.queries
            << " queries, " << at::get_num_threads() << " threads\n";
  const double bandwidth = read_bandwidth();
  std::cout << "memory read bandwidth: " << std::fixed << std::setprecision(1) << bandwidth << " GB/s\n\n";
  std::cout << "| detections | index | build s | 1 query ms (p10-p90) | batch " << args.batch
            << " ms/query | recall@" << args.top_k << " | scan bound ms |\n|---|---|---|---|---|---|---|\n";
  for (const int64_t n : args.sizes) {
    at::manual_seed(0);
    auto [vectors, queries] = clustered(n, args.dim, args.queries);
    const at::Tensor ids = at::arange(1, n + 1, at::kLong);
    std::unique_ptr<gallery::VectorIndex> exact;
    for (const auto kind : {gallery::IndexKind::kExact, gallery::IndexKind::kApproximate}) {
      if (kind == gallery::IndexKind::kApproximate && n > args.approximate_max) continue;
      auto t = Clock::now();
      auto index = std::make_unique<gallery::VectorIndex>(ids, vectors, kind);
      const double build = seconds_since(t);
      std::vector<double> single;
      for (int64_t q = 0; q < args.queries; ++q) {
        t = Clock::now();
        index->search(queries.narrow(0, q, 1), args.top_k);
        single.push_back(seconds_since(t) * 1e3);
      }
      std::vector<double> batched;
      for (int64_t q = 0; q + args.batch <= args.queries; q += args.batch) {
        t = Clock::now();
        index->search(queries.narrow(0, q, args.batch), args.top_k);
        batched.push_back(seconds_since(t) * 1e3 / args.batch);
      }
      const double recall = kind == gallery::IndexKind::kExact
                                ? 1.0
                                : gallery::recall(index->search(queries, args.top_k), exact->search(queries, args.top_k));
      const auto [median, p10, p90] = percentiles(single);  // cli_util.h
      const double bound = static_cast<double>(n * args.dim * 4) / (bandwidth * 1e9) * 1e3;
      std::cout << std::setprecision(2) << "| " << n << " | " << gallery::to_string(kind) << " | " << build << " | "
                << median << " (" << p10 << "-" << p90 << ") | "
                << (batched.empty() ? 0.0 : percentiles(batched).median) << " | " << std::setprecision(3) << recall
                << " | " << std::setprecision(2)
                << (kind == gallery::IndexKind::kExact ? std::to_string(bound).substr(0, 5) : std::string("-")) << " |"
                << std::endl;
      if (kind == gallery::IndexKind::kExact) exact = std::move(index);
    }
  }
}

void bench_indexing(const BenchArgs& args) {
  std::cout << "\nindexing " << args.frames << " frames of " << args.video << ", " << at::get_num_threads()
            << " threads\n\n| model | frames/s | detections/frame |\n|---|---|---|\n";
  const auto dir = std::filesystem::temp_directory_path() / ("psearch_bench_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, std::string>> models{{"separate", ""}};
  if (!args.checkpoint.empty()) models.emplace_back("", args.checkpoint);
  for (const auto& [type, checkpoint] : models) {
    gallery::GalleryModel model = gallery::load_gallery_model(checkpoint, type, {}, parse_device(args.device));
    const std::string path = (dir / (model.identity.type + ".db")).string();
    gallery::GalleryStore store(path, gallery::GalleryStore::Mode::kCreateOrWrite);
    gallery::IndexOptions options;
    options.max_frames = args.frames;
    options.progress = false;
    const auto s = gallery::index_sources(store, model, {{args.video, "bench"}}, options);
    std::cout << std::fixed << std::setprecision(2) << "| " << model.identity.type
              << (checkpoint.empty() ? " (pretrained)" : " (" + checkpoint + ")") << " | " << s.frames / s.seconds
              << " | " << static_cast<double>(s.detections) / std::max<int64_t>(s.frames, 1) << " |" << std::endl;
  }
  data::synth::remove_tree(dir);  // not std::filesystem::remove_all: LibTorch's copy crashes
}

void run_bench(const BenchArgs& args) {
  apply_threads(args.threads);
  c10::NoGradGuard no_grad;
  BenchArgs search = args;
  search.sizes.erase(std::remove_if(search.sizes.begin(), search.sizes.end(), [](int64_t n) { return n <= 0; }),
                     search.sizes.end());
  if (!search.sizes.empty()) bench_search(search);
  if (!args.video.empty()) bench_indexing(args);
}

void add_bench_gallery_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench-gallery", "Benchmark gallery search latency and indexing throughput (a table)");
  cmd->add_option("--sizes", args->sizes, "Gallery sizes (detections); 0: skip the search part")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--dim", args->dim, "Embedding dimension")->check(CLI::Range(8, 4096))->capture_default_str();
  cmd->add_option("--queries", args->queries, "Queries per size")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "Neighbours per query")->check(CLI::Range(1, 10000))->capture_default_str();
  cmd->add_option("--batch", args->batch, "Queries per batched call")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--approximate-max", args->approximate_max, "Largest size the approximate index is built for")
      ->capture_default_str();
  cmd->add_option("--video", args->video, "Also measure indexing throughput on this video")->check(CLI::ExistingFile);
  cmd->add_option("--frames", args->frames, "Frames indexed per model")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--checkpoint", args->checkpoint, "A trained joint model to measure next to the separate pipeline");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(85, add_bench_gallery_command);

}  // namespace psearch::cli
