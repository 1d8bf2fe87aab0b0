// `psearch train`: trains any registered model type (psearch models) as a YAML config says
// (docs/training.md).
//   psearch train --config configs/nae_prw.yaml [KEY=VALUE ...] --out out/nae_prw [--resume]
// Data-parallel (docs/distributed.md): `--nproc N` on one machine, or any launcher that sets
// torchrun's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "psearch/config/config.h"
#include "psearch/distributed/environment.h"
#include "psearch/distributed/process_group.h"
#include "psearch/engine/trainer.h"

namespace psearch::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string out = "out/train";
  bool resume = false;
  bool overwrite = false;
  std::string device = "cpu";
  int64_t stop_after = -1;
  int threads = 0;
  bool quiet = false;
  JobArgs job;
  bool rank_checkpoints = false;
};

/// cuda -> cuda:LOCAL_RANK in a job, so each process of a machine takes its own GPU.
c10::Device job_device(c10::Device device, const distributed::Environment& env) {
  if (device.is_cuda() && !device.has_index() && env.distributed())
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  return device;
}

void run_train(const TrainArgs& args) {
  if (ran_as_local_job(args.job)) return;
  apply_threads(args.threads);
  const config::Config config = config::load_config(args.config, args.overrides);
  const distributed::Environment env = distributed::environment_from_variables();
  std::unique_ptr<distributed::ProcessGroup> job;
  const c10::Device device = job_device(parse_device(args.device), env);
  if (env.distributed()) job = std::make_unique<distributed::ProcessGroup>(env, device, std::chrono::seconds(args.job.dist_timeout));
  engine::TrainOptions options;
  options.job = job.get();
  options.rank_checkpoints = args.rank_checkpoints;
  options.out_dir = args.out;
  options.resume = args.resume;
  options.overwrite = args.overwrite;
  options.device = device;
  options.stop_after = args.stop_after;
  options.verbose = !args.quiet;
  const engine::TrainResult r = engine::train_model(config, options);
  if (env.rank == 0)
    std::cout << (r.interrupted ? "interrupted" : "stopped") << " at iteration " << r.iterations << " of "
            << r.total_iterations << " after " << r.seconds << " s; checkpoint " << r.checkpoint << "\n";
  if (r.interrupted) std::exit(130);  // the shell's convention for Ctrl-C
}

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a person-search model (OIM-base, NAE, NAE+, ...) as a YAML config says");
  cmd->add_option("--config", args->config, "YAML config, e.g. configs/nae_prw.yaml")->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("overrides", args->overrides, "KEY=VALUE config overrides, e.g. train.lr=0.001 dataset.root=data/PRW");
  cmd->add_option("--out", args->out, "Output folder (checkpoints, config.yaml, log.jsonl)")->capture_default_str();
  auto* resume = cmd->add_flag("--resume", args->resume, "Continue from <out>/last.pt");
  cmd->add_flag("--overwrite", args->overwrite, "Start afresh in an --out folder that holds a run (removes its checkpoints and log)")
      ->excludes(resume);
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--stop-after", args->stop_after, "Stop (with a checkpoint) after this many iterations in total")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  add_threads_option(cmd, args->threads);
  cmd->add_flag("--quiet", args->quiet, "No log lines on stdout (log.jsonl is still written)");
  add_job_options(cmd, args->job,
                  "Data-parallel training with this many processes on this machine (train.batch_size is the "
                  "global batch)");
  cmd->add_flag("--rank-checkpoints", args->rank_checkpoints,
                "In a job, every rank also writes <out>/rank<r>/last.pt (to check that the ranks agree)");
  cmd->callback([args] { run_train(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(32, add_train_command);

}  // namespace psearch::cli
