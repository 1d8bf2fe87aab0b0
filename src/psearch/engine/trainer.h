#pragma once
/// Training any registered person-search model (OIM-base, NAE, NAE+, ...) on a dataset's
/// training split, as configured (docs/training.md), through the model interface only:
///   SGD (momentum, weight decay, separate bias settings), linear warm-up, multi-step
///   decay, global gradient-norm clipping; images resized as the config says, random
///   horizontal flips, seeded data order; a log line with the loss terms, learning rate,
///   speed and ETA every log_every iterations (also appended to <out>/log.jsonl);
///   checkpoints (<out>/last.pt) written atomically every checkpoint_every units, on
///   Ctrl-C, and at the end (also copied to <out>/final.pt).
/// Resuming from <out>/last.pt continues exactly where the checkpoint was written: model,
/// OIM memory, optimizer, iteration, data order, flips and sampling.
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "psearch/config/config.h"

namespace psearch::distributed {
class ProcessGroup;
}

namespace psearch::engine {

struct TrainOptions {
  /// Output folder: last.pt, final.pt, config.yaml, log.jsonl.
  std::string out_dir = "out/train";
  /// Continue from <out_dir>/last.pt (its config must equal this one).
  bool resume = false;
  /// Start afresh in an out_dir that holds a run (its last.pt, final.pt and log.jsonl are
  /// removed first). Without it (and without resume) such a folder is refused, so a run is
  /// never replaced by accident.
  bool overwrite = false;
  c10::Device device = c10::Device(c10::kCPU);
  /// Stop after this many iterations in total (-1: the configured length), with a
  /// checkpoint; a later --resume continues. For tests and for splitting long runs.
  int64_t stop_after = -1;
  /// Print log lines (they also go to log.jsonl either way).
  bool verbose = true;
  /// The data-parallel job this process is a rank of (docs/distributed.md), or null for a
  /// single process. train.batch_size is the job's global batch, split evenly over the
  /// ranks; gradients are averaged, the OIM memory is shared, and only rank 0 writes
  /// checkpoints and logs. Every rank must pass the same config and options.
  distributed::ProcessGroup* job = nullptr;
  /// In a job, ranks other than 0 also write their checkpoints, as <out_dir>/rank<r>/last.pt
  /// and final.pt: to check that every rank holds the same model and OIM memory.
  bool rank_checkpoints = false;
};

struct TrainResult {
  int64_t iterations = 0;        ///< iterations completed in total
  int64_t total_iterations = 0;  ///< the configured length in iterations
  double seconds = 0;            ///< wall time of this call
  double last_loss = 0;          ///< total loss of the last iteration
  std::string checkpoint;        ///< path of the last checkpoint written
  bool interrupted = false;      ///< stopped by SIGINT / SIGTERM
};

/// Trains as `config` says. Throws std::runtime_error (one line, naming the file) for a
/// missing dataset, unreadable images or weight files, a checkpoint that does not fit, or a
/// loss that becomes NaN / infinite (the last checkpoint stays as it was).
TrainResult train_model(const config::Config& config, const TrainOptions& options);

}  // namespace psearch::engine
