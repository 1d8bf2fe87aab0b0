// `psearch dataset-info`: load CUHK-SYSU or PRW from their original layout and summarise
// both splits (images, boxes, identities, the search protocol's queries and galleries).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include "commands.h"
#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/prw.h"

namespace psearch::cli {
namespace {

struct DatasetArgs {
  std::string dataset;
  std::string root;
  int gallery_size = 100;
  std::string subset = "none";
  bool ignore_cam_id = true;
};

struct Column {
  int64_t images = 0, boxes = 0, labeled_ids = 0, labeled_boxes = 0, unlabeled_boxes = 0, skipped = 0, unmatched = 0;
  double seconds = 0;
};

Column describe(const std::vector<data::ImageRecord>& images, const data::LoadSummary& summary, double seconds) {
  Column c;
  std::set<int64_t> ids;
  for (const auto& image : images) {
    for (const auto& person : image.persons) {
      if (person.pid == data::kUnlabeled) {
        ++c.unlabeled_boxes;
      } else {
        ++c.labeled_boxes;
        ids.insert(person.pid);
      }
    }
  }
  c.images = summary.images;
  c.boxes = summary.boxes;
  c.labeled_ids = static_cast<int64_t>(ids.size());
  c.skipped = summary.skipped_degenerate_boxes;
  c.unmatched = summary.unmatched_identity_boxes;
  c.seconds = seconds;
  return c;
}

void row(const char* name, const std::string& train, const std::string& test) {
  std::printf("  %-34s %12s %12s\n", name, train.c_str(), test.c_str());
}
std::string num(int64_t v) { return std::to_string(v); }
std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void run_dataset_info(const DatasetArgs& args) {
  const bool cuhk = args.dataset == "cuhk-sysu";
  auto start = std::chrono::steady_clock::now();
  const data::TrainSplit train = cuhk ? data::load_cuhk_sysu_train(args.root) : data::load_prw_train(args.root);
  const double train_s = seconds_since(start);
  start = std::chrono::steady_clock::now();
  const data::SearchSplit test =
      cuhk ? data::load_cuhk_sysu_test(args.root, args.gallery_size, data::parse_cuhk_subset(args.subset))
           : data::load_prw_test(args.root, args.ignore_cam_id);
  const double test_s = seconds_since(start);

  Column tr = describe(train.images, train.summary, train_s);
  tr.labeled_ids = train.num_labeled_ids;  // the lookup-table size, even for ids without a box
  const Column te = describe(test.images, test.summary, test_s);
  double gallery = 0, positives = 0;
  for (const auto& q : test.queries) {
    gallery += static_cast<double>(q.gallery.size());
    positives += static_cast<double>(q.positives.size());
  }
  const double nq = test.queries.empty() ? 1.0 : static_cast<double>(test.queries.size());

  std::string protocol;
  if (cuhk) {
    protocol = "gallery " + (args.gallery_size == -1 ? std::string("whole pool") : std::to_string(args.gallery_size)) +
               ", subset " + args.subset;
  } else {
    protocol = std::string("ignore_cam_id ") + (args.ignore_cam_id ? "true" : "false");
  }
  std::printf("%s at %s (test protocol: %s)\n", cuhk ? "CUHK-SYSU" : "PRW", args.root.c_str(), protocol.c_str());
  row("", "train", "test");
  row("images", num(tr.images), num(te.images));
  row("boxes", num(tr.boxes), num(te.boxes));
  row("labeled ids", num(tr.labeled_ids), num(te.labeled_ids));
  row("labeled boxes", num(tr.labeled_boxes), num(te.labeled_boxes));
  row("unlabeled boxes", num(tr.unlabeled_boxes), num(te.unlabeled_boxes));
  row("skipped boxes (degenerate)", num(tr.skipped), num(te.skipped));
  if (cuhk) row("identity boxes matching no box", num(tr.unmatched), num(te.unmatched));
  row("queries", "-", num(static_cast<int64_t>(test.queries.size())));
  row("mean gallery size (images)", "-", fixed(gallery / nq, 1));
  row("mean positives per query", "-", fixed(positives / nq, 2));
  row("load time (s)", fixed(tr.seconds, 2), fixed(te.seconds, 2));
}

void add_dataset_command(CLI::App& app) {
  auto args = std::make_shared<DatasetArgs>();
  auto* cmd =
      app.add_subcommand("dataset-info", "Load CUHK-SYSU or PRW from their original layout and summarise both splits");
  cmd->add_option("--dataset", args->dataset, "cuhk-sysu or prw")
      ->required()
      ->check(CLI::IsMember({"cuhk-sysu", "prw"}));
  cmd->add_option("--root", args->root,
                  "Dataset root (CUHK-SYSU: Image/ and annotation/; PRW: frames/, annotations/, ...)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--gallery-size", args->gallery_size,
                  "CUHK-SYSU gallery size: 50, 100, 500, 1000, 2000, 4000, -1 (whole pool); with a subset, -1 or "
                  "the subset's gallery size")
      ->capture_default_str();
  cmd->add_option("--subset", args->subset, "CUHK-SYSU query subset: none, occlusion, low_resolution")
      ->check(CLI::IsMember({"none", "occlusion", "low_resolution"}))
      ->capture_default_str();
  cmd->add_flag("--ignore-cam-id,!--no-ignore-cam-id", args->ignore_cam_id,
                "PRW: keep gallery frames of the query's camera (default; --no-ignore-cam-id removes them)");
  cmd->callback([args] {
    const auto& sizes = data::cuhk_gallery_sizes();
    const bool listed = std::find(sizes.begin(), sizes.end(), args->gallery_size) != sizes.end();
    if (args->gallery_size != -1 && (args->subset == "none" ? !listed : args->gallery_size <= 0)) {
      throw CLI::ValidationError(
          "--gallery-size", std::to_string(args->gallery_size) + " is not one of 50, 100, 500, 1000, 2000, 4000, -1");
    }
    run_dataset_info(*args);
  });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(30, add_dataset_command);

}  // namespace psearch::cli
