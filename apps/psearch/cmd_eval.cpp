// `psearch eval`: runs a model over a dataset's test split and scores it with the standard
// protocol (the same report as `psearch eval-results`).
//
// Models: a trained checkpoint (--checkpoint, from `psearch train` or an import: any
// registered model type; the type and the inference settings, including the default
// --det-thresh and the batch size, come from the config it carries, --set overrides
// them), or resnet50-roi, the re-identification-only baseline (ground-truth boxes +
// ResNet-50 features; ImageNet weights via --weights), or separate, the pretrained
// detector + ImageNet MobileNetV2 pipeline that set-up installs (no training). --save-results writes what the
// model produced as a results file that `psearch eval-results` scores to the same figures.
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_util.h"
#include "commands.h"
#include "eval_report.h"
#include "psearch/distributed/environment.h"
#include "psearch/distributed/process_group.h"
#include "psearch/engine/mixed_precision.h"
#include "psearch/engine/run_model.h"
#include "psearch/engine/model_builder.h"
#include "psearch/evaluation/results_file.h"
#include "psearch/modeling/baseline/resnet_roi_embedder.h"
#include "psearch/util/atomic_file.h"

namespace psearch::cli {
namespace {

struct ModelArgs {
  std::string checkpoint;
  std::vector<std::string> overrides;
  std::string save_results;
  std::string model = "resnet50-roi";
  std::string weights;
  bool gt_boxes = false;
  int64_t min_size = 900, max_size = 1500;
  std::string device = "cpu";
  int64_t seed = 0;
  int threads = 0;
  JobArgs job;
  std::string precision = "fp32";
};

/// Training settings change nothing at evaluation; say so rather than ignore them silently.
void warn_about_unused_overrides(const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    if (o.rfind("train.", 0) == 0)
      std::cerr << "psearch: warning: --set " << o << ": eval does not use training settings; ignored\n";
  }
}

/// The folder a file will be written into ("." for a bare name).
std::string parent_directory(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

/// The model to run, and how to run it (from a checkpoint's config where there is one).
struct LoadedModel {
  std::unique_ptr<modeling::SearchModel> model;
  engine::RunOptions run;
  std::optional<double> det_thresh;  ///< the checkpoint's inference.det_thresh
};

/// A registered model that needs no training (model.type "separate"), built from the
/// default config with --set overrides.
LoadedModel make_pretrained_model(const ModelArgs& args) {
  warn_about_unused_overrides(args.overrides);
  const config::Config config = config::parse_config("model:\n  type: " + args.model + "\n", "--model " + args.model,
                                                     args.overrides);
  modeling::PersonSearchModel model = engine::build_model(config, 0);
  engine::prepare_for_inference(*model, config, parse_device(args.device));
  LoadedModel loaded;
  loaded.model = std::make_unique<modeling::PersonSearchAdapter>(model);
  loaded.run.batch_size = config.inference.batch_size;
  loaded.run.context_overlap = config.inference.nms_thresh;
  loaded.det_thresh = config.inference.det_thresh;
  return loaded;
}

LoadedModel make_model(const ModelArgs& args) {
  if (args.checkpoint.empty() && args.model != "resnet50-roi") return make_pretrained_model(args);
  if (!args.overrides.empty() && args.checkpoint.empty())
    throw CLI::ValidationError("--set", "applies to a --checkpoint's config or a --model separate only");
  LoadedModel loaded;
  if (!args.checkpoint.empty()) {
    warn_about_unused_overrides(args.overrides);
    engine::TrainedModel trained = engine::load_trained_model(args.checkpoint, parse_device(args.device), args.overrides);
    std::cout << "loaded " << trained.config.model.type << " from " << args.checkpoint << " (iteration "
              << trained.iteration << ")\n";
    loaded.model = std::make_unique<modeling::PersonSearchAdapter>(trained.model);
    loaded.run.batch_size = trained.config.inference.batch_size;
    loaded.run.context_overlap = trained.config.inference.nms_thresh;
    loaded.det_thresh = trained.config.inference.det_thresh;
    return loaded;
  }
  at::manual_seed(static_cast<uint64_t>(args.seed));  // random initialisation when no weights
  loaded.model = std::make_unique<modeling::ResNetRoIEmbedder>(modeling::ResNetRoIEmbedderOptions()
                                                                   .weights(args.weights)
                                                                   .min_size(args.min_size)
                                                                   .max_size(args.max_size)
                                                                   .device(parse_device(args.device)));
  return loaded;
}

/// Every tensor of `inputs` as float32 (a reduced-precision run returns its dtype).
void to_float32(evaluation::SearchInputs& inputs) {
  auto as_float = [](at::Tensor& t) {
    if (t.defined() && t.is_floating_point()) t = t.to(at::kFloat);
  };
  for (auto& g : inputs.gallery) as_float(g.boxes), as_float(g.scores), as_float(g.features);
  as_float(inputs.query_features);
  for (auto& c : inputs.query_context) as_float(c.boxes), as_float(c.features);
}

/// The model's output in the results-file form, so both eval commands share one scorer.
evaluation::ResultsFile as_results(const data::SearchSplit& split, evaluation::SearchInputs inputs,
                                   const std::string& name) {
  evaluation::ResultsFile file;
  file.path = name;
  file.dim = inputs.query_features.defined() ? inputs.query_features.size(1) : 0;
  for (const auto& image : split.images) file.gallery_images.push_back(image.name);
  file.gallery = std::move(inputs.gallery);
  for (const auto& q : split.queries) {
    file.query_images.push_back(split.images[q.image].name);
    file.query_boxes.push_back(q.box);
  }
  file.query_features = inputs.query_features;
  file.query_context = std::move(inputs.query_context);
  return file;
}

void run_eval(EvalSettings settings, const ModelArgs& args) {
  if (ran_as_local_job(args.job)) return;
  // In a job (--nproc, torchrun) every rank runs its share of the images and queries; the
  // results are gathered over Gloo and rank 0 scores and writes them (docs/distributed.md).
  const distributed::Environment env = distributed::environment_from_variables();
  std::unique_ptr<distributed::ProcessGroup> job;
  std::optional<distributed::ScopedModelCollectives> collectives;
  if (env.distributed()) {
    job = std::make_unique<distributed::ProcessGroup>(env, c10::Device(c10::kCPU), std::chrono::seconds(args.job.dist_timeout));
    collectives.emplace(job.get());
    if (env.rank != 0) std::cout.setstate(std::ios_base::failbit);  // rank 0 reports
  }
  apply_threads(args.threads);
  if (!args.save_results.empty()) util::ensure_writable_directory(parent_directory(args.save_results));
  LoadedModel loaded = make_model(args);
  modeling::SearchModel& model = *loaded.model;
  if (!model.has_detector() && !args.gt_boxes)
    throw std::runtime_error(model.name() + " has no detector: add --gt-boxes to embed the annotated boxes");
  if (loaded.det_thresh && !settings.det_thresh_given) settings.det_thresh = *loaded.det_thresh;
  const data::SearchSplit split = load_test_split(settings);
  const std::string weights = !args.checkpoint.empty() ? args.checkpoint : args.weights;
  std::cout << "running " << model.name() << (weights.empty() ? " (random weights)" : " (" + weights + ")")
            << " on " << split.images.size() << " images, " << split.queries.size() << " queries"
            << (args.gt_boxes ? ", ground-truth boxes" : "") << "\n";
  engine::RunOptions run = loaded.run;
  run.ground_truth_boxes = args.gt_boxes;
  run.shard = env.rank;
  run.shards = env.world_size;
  run.progress = env.rank == 0;
  // The query-image context costs nothing extra to keep, and a saved file should serve --cbgm later.
  run.query_context = settings.cbgm || !args.save_results.empty();
  const std::string source = "model " + model.name() + (args.gt_boxes ? " on ground-truth boxes" : "");
  evaluation::SearchInputs inputs;
  {
    // bf16 / fp16: the model runs under autocast; what it returns is stored as float32.
    engine::AutocastScope autocast(parse_device(args.device), engine::precision_dtype(args.precision));
    inputs = engine::run_search_model(model, split, run);
  }
  if (args.precision != "fp32") to_float32(inputs);
  const evaluation::ResultsFile results = as_results(split, std::move(inputs), source);
  if (env.rank != 0) return;  // rank 0 scores and writes
  if (!args.save_results.empty()) {
    evaluation::write_results_file(args.save_results, results);
    std::cout << "wrote " << args.save_results << " (psearch-results/1; score it with psearch eval-results)\n";
  }
  evaluate_and_report(settings, results, source);
}

void add_eval_command(CLI::App& app) {
  auto settings = std::make_shared<EvalSettings>();
  auto args = std::make_shared<ModelArgs>();
  auto* cmd = app.add_subcommand("eval", "Run a model on a dataset's test split and score it (CUHK-SYSU / PRW protocol)");
  cmd->add_option("--checkpoint", args->checkpoint, "Trained model (psearch train's last.pt / final.pt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--save-results", args->save_results,
                  "Also write the detections and embeddings as a results file (docs/results_format.md)");
  cmd->add_option("--set", args->overrides, "KEY=VALUE overrides of the checkpoint's config, e.g. inference.nms_thresh=0.5");
  cmd->add_option("--model", args->model,
                  "Model when no --checkpoint is given: resnet50-roi (re-id baseline, no detector) or separate "
                  "(pretrained detector + ImageNet MobileNetV2 embedder; --set model.separate.* to configure)")
      ->check(CLI::IsMember({"resnet50-roi", "separate"}))
      ->capture_default_str();
  cmd->add_option("--weights", args->weights, "Backbone weights (torchvision ResNet-50 checkpoint)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--gt-boxes", args->gt_boxes, "Embed the annotated boxes instead of detecting (re-id only)");
  cmd->add_option("--min-size", args->min_size, "Shorter image side after resizing")->capture_default_str()
      ->check(CLI::Range(32, 4096));
  cmd->add_option("--max-size", args->max_size, "Longer image side at most")->capture_default_str()
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the random initialisation when no weights are given")
      ->capture_default_str();
  add_threads_option(cmd, args->threads);
  add_job_options(cmd, args->job, "Run with this many processes on this machine, each on its share of the images");
  cmd->add_option("--precision", args->precision,
                  "Run the model under autocast in bf16 or fp16 (results stored as float32); docs/benchmarks.md")
      ->check(CLI::IsMember(engine::precision_names()))->capture_default_str();
  auto check = add_protocol_options(cmd, settings);
  cmd->callback([settings, args, check] {
    check();
    run_eval(*settings, *args);
  });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(35, add_eval_command);

}  // namespace psearch::cli
