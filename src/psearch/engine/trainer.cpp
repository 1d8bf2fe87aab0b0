#include "psearch/engine/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/image_io.h"
#include "psearch/data/prw.h"
#include "psearch/distributed/process_group.h"
#include "psearch/engine/mixed_precision.h"
#include "psearch/engine/step_checks.h"
#include "psearch/engine/training_checkpoint.h"
#include "psearch/checkpoint/state_dict.h"
#include "psearch/engine/model_builder.h"
#include "psearch/modeling/input/image_transform.h"
#include "psearch/util/atomic_file.h"
#include "psearch/util/file_status.h"
#include "psearch/util/strings.h"

namespace psearch::engine {
namespace {

namespace ms = psearch::modeling;

std::atomic<bool> g_stop_requested{false};
extern "C" void request_stop(int) { g_stop_requested = true; }

/// Installs SIGINT / SIGTERM handlers for the lifetime of a training run: the run finishes
/// its iteration, writes a checkpoint and returns.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested = false;
    previous_int_ = std::signal(SIGINT, request_stop);
    previous_term_ = std::signal(SIGTERM, request_stop);
  }
  ~StopSignals() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};

data::TrainSplit load_train_split(const config::DatasetConfig& d) {
  if (d.name == "prw") return data::load_prw_train(d.root);
  return data::load_cuhk_sysu_train(d.root);
}

/// The learning-rate schedule and checkpoint cadence in iterations.
struct Schedule {
  int64_t per_epoch = 1, total = 1, warmup = 0, checkpoint_every = 1;
  std::vector<int64_t> milestones;
  double base_lr = 0, warmup_factor = 1, gamma = 0.1;

  /// Multiplier of the base learning rate at iteration `it` (0-based): torchvision's linear
  /// warm-up (warmup_factor rising to 1), then gamma per milestone passed.
  double factor(int64_t it) const {
    double f = 1.0;
    if (it < warmup) {
      const double alpha = static_cast<double>(it) / static_cast<double>(warmup);
      f = warmup_factor * (1 - alpha) + alpha;
    }
    for (int64_t m : milestones)
      if (it >= m) f *= gamma;
    return f;
  }
};

Schedule make_schedule(const config::TrainConfig& t, int64_t num_images) {
  Schedule s;
  s.per_epoch = (num_images + t.batch_size - 1) / t.batch_size;
  const int64_t unit = t.unit == "epoch" ? s.per_epoch : 1;
  s.total = t.length * unit;
  s.warmup = t.warmup * unit;
  s.checkpoint_every = std::max<int64_t>(1, t.checkpoint_every * unit);
  for (int64_t m : t.milestones) s.milestones.push_back(m * unit);
  s.base_lr = t.lr;
  s.warmup_factor = t.warmup_factor;
  s.gamma = t.gamma;
  return s;
}

/// Image order of an epoch: a permutation that depends only on (seed, epoch), so a resumed
/// run sees the same batches.
std::vector<int64_t> epoch_order(int64_t num_images, int64_t seed, int64_t epoch) {
  std::vector<int64_t> order(num_images);
  for (int64_t i = 0; i < num_images; ++i) order[i] = i;
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

struct Batch {
  std::vector<at::Tensor> images;
  std::vector<ms::TrainingTarget> targets;
};

/// Which images of the job's global batch this process trains on.
struct Shard {
  int rank = 0, world_size = 1;
};

/// This rank's images of iteration `iteration` (positions in `order`, its epoch's image
/// order), decoded, flipped and moved to `device`. The global batch is split into
/// contiguous equal shares in rank order, so the ranks together see the batch one process
/// would. Flips are one draw per global position from a generator seeded by (seed,
/// iteration), drawn for every position on every rank, so a job flips the same images as
/// one process. In a job the last, short batch of an epoch is filled from the epoch's
/// first images (as torch's DistributedSampler pads), since every rank needs images.
Batch load_batch(const data::TrainSplit& split, const std::vector<int64_t>& order, const Schedule& schedule,
                 const config::TrainConfig& t, int64_t iteration, c10::Device device, Shard shard) {
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t begin = (iteration % schedule.per_epoch) * t.batch_size;
  const int64_t end = shard.world_size == 1 ? std::min(n, begin + t.batch_size) : begin + t.batch_size;
  const int64_t share = t.batch_size / shard.world_size;
  const int64_t mine_begin = begin + shard.rank * share, mine_end = mine_begin + share;
  at::Generator flips = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(t.seed) * 1000003ULL +
                                                                 static_cast<uint64_t>(iteration));
  Batch batch;
  for (int64_t k = begin; k < end; ++k) {
    if (shard.world_size > 1 && (k < mine_begin || k >= mine_end)) {
      if (t.flip) at::rand({1}, flips, at::TensorOptions().dtype(at::kDouble));  // another rank's draw
      continue;
    }
    const data::ImageRecord& record = split.images[order[k % n]];
    std::vector<float> coords;
    std::vector<int64_t> pids;
    for (const auto& p : record.persons) {
      coords.insert(coords.end(), p.box.begin(), p.box.end());
      pids.push_back(p.pid);
    }
    at::Tensor boxes = coords.empty() ? at::zeros({0, 4}) : at::tensor(coords).view({-1, 4});
    at::Tensor image = data::read_image(record.path);
    if (t.flip) {
      ms::FlipResult f = ms::random_hflip(image, boxes, 0.5, flips);
      image = f.image, boxes = f.boxes;
    }
    // Pinned host memory lets the copy run asynchronously (this is the prefetch thread).
    if (device.is_cuda()) image = image.pin_memory();
    batch.images.push_back(image.to(device, /*non_blocking=*/device.is_cuda()));
    batch.targets.push_back({boxes.to(device), at::tensor(pids, at::kLong).view({-1}).to(device)});
  }
  return batch;
}

/// SGD with two parameter groups: weights (weight_decay, lr) and biases
/// (weight_decay_bias, lr * bias_lr_factor). Frozen parameters are left out.
std::unique_ptr<torch::optim::SGD> make_optimizer(torch::nn::Module& model, const config::TrainConfig& t) {
  std::vector<at::Tensor> weights, biases;
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    (util::ends_with(item.key(), ".bias") ? biases : weights).push_back(item.value());
  }
  auto options = [&](double lr_factor, double decay) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(t.lr * lr_factor).momentum(t.momentum).weight_decay(decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(weights, options(1.0, t.weight_decay));
  groups.emplace_back(biases, options(t.bias_lr_factor, t.weight_decay_bias));
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(t.lr));
}

void set_learning_rate(torch::optim::SGD& sgd, const config::TrainConfig& t, double factor) {
  auto& groups = sgd.param_groups();
  static_cast<torch::optim::SGDOptions&>(groups[0].options()).lr(t.lr * factor);
  static_cast<torch::optim::SGDOptions&>(groups[1].options()).lr(t.lr * t.bias_lr_factor * factor);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else out << s << "s";
  return out.str();
}

/// A loss term's name in log lines: "loss_box_reg" -> "box_reg".
std::string short_loss_name(const std::string& name) {
  return util::starts_with(name, "loss_") ? name.substr(5) : name;
}

class Trainer {
 public:
  Trainer(const config::Config& config, const TrainOptions& options)
      : config_(config), options_(options), job_(options.job) {}

  TrainResult run() {
    const auto start = std::chrono::steady_clock::now();
    check_job();
    if (is_main()) prepare_out_dir();
    if (job_ != nullptr) job_->barrier();  // the folder is ready before any rank reads it
    split_ = load_train_split(config_.dataset);
    if (split_.images.empty()) throw std::runtime_error(config_.dataset.root + ": the training split has no images");
    schedule_ = make_schedule(config_.train, static_cast<int64_t>(split_.images.size()));
    build();
    const std::string last = options_.out_dir + "/last.pt";
    int64_t iteration = options_.resume ? resume(last) : 0;
    if (!options_.resume && is_main())
      util::write_text_atomically(options_.out_dir + "/config.yaml", config::to_yaml(config_));
    if (job_ != nullptr) join_job(iteration);

    const int64_t stop = options_.stop_after >= 0 ? std::min(options_.stop_after, schedule_.total) : schedule_.total;
    stop_ = stop;
    StopSignals signals;
    TrainResult result;
    result.total_iterations = schedule_.total;
    const int64_t first = iteration;
    model_->train();
    log_header(first, stop);
    std::optional<distributed::ScopedModelCollectives> collectives;
    if (job_ != nullptr) collectives.emplace(job_);
    // The loop waits for the device only where it logs or checkpoints (step_checks.h).
    while (iteration < stop && !stop_requested()) {
      step(iteration);
      ++iteration;
      const bool log_now = iteration % config_.train.log_every == 0 || iteration == stop;
      const bool save_now = iteration % schedule_.checkpoint_every == 0 && iteration < stop;
      if (log_now || save_now) watch_.check();
      if (log_now) log(iteration, seconds_since(start) / static_cast<double>(iteration - first));
      if (save_now) save(last, iteration);
    }
    watch_.check();
    result.interrupted = iteration < stop;
    result.iterations = iteration;
    if (iteration > first) result.last_loss = losses_.at("loss").item<double>();
    save(last, iteration);
    result.checkpoint = last;
    if (iteration == schedule_.total) {
      save(options_.out_dir + "/final.pt", iteration);
      result.checkpoint = options_.out_dir + "/final.pt";
    }
    result.seconds = seconds_since(start);
    return result;
  }

 private:
  /// Rank 0 of a job, or the only process: the one that writes files and log lines.
  bool is_main() const { return job_ == nullptr || job_->rank() == 0; }

  /// A stop request (SIGINT / SIGTERM) seen by any rank stops every rank at the same
  /// iteration, so no rank waits in a collective for one that has left.
  bool stop_requested() const { return job_ != nullptr ? job_->any(g_stop_requested) : g_stop_requested.load(); }

  /// Refuses a job whose ranks disagree on the config or the run, or whose batch does not
  /// split evenly over the ranks.
  void check_job() {
    if (job_ == nullptr) return;
    if (config_.train.batch_size % job_->world_size() != 0)
      throw std::runtime_error("train.batch_size=" + std::to_string(config_.train.batch_size) +
                               " does not split over " + std::to_string(job_->world_size()) +
                               " processes; make it a multiple of the world size (it is the global batch)");
    job_->require_same("config (model type, schedule and data)", config::to_yaml(config_));
    job_->require_same("run options (--out, --resume, --overwrite, --stop-after)",
                       options_.out_dir + "|" + std::to_string(options_.resume) + "|" +
                           std::to_string(options_.overwrite) + "|" + std::to_string(options_.stop_after));
  }

  /// Makes every rank start from rank 0's model (parameters and buffers, OIM memory
  /// included) and gives each rank its own random stream for proposal sampling; rank 0
  /// keeps the stream a single process would have.
  void join_job(int64_t iteration) {
    std::vector<at::Tensor> state;
    for (const auto& item : model_->named_parameters()) state.push_back(item.value().data());
    for (const auto& item : model_->named_buffers()) state.push_back(item.value());
    job_->broadcast_from_rank0(state);
    if (job_->rank() > 0)
      at::manual_seed(static_cast<uint64_t>(config_.train.seed) * 0x9E3779B97F4A7C15ULL +
                      static_cast<uint64_t>(iteration) * 7919ULL + static_cast<uint64_t>(job_->rank()));
    std::vector<at::Tensor> trained;
    for (const auto& p : model_->parameters())
      if (p.requires_grad()) trained.push_back(p);
    gradients_ = std::make_unique<distributed::GradientAverager>(*job_, trained);
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  /// The files of a run in out_dir; one of them present means the folder holds a run.
  static constexpr const char* kRunFiles[] = {"last.pt", "final.pt", "log.jsonl"};

  /// Refuses to start afresh over an existing run unless told to overwrite it, and checks
  /// that the folder is writable before the dataset and the model are loaded.
  void prepare_out_dir() const {
    if (options_.stop_after < -1)
      throw std::runtime_error("--stop-after must be >= 0 (or -1 for the whole schedule), got " +
                               std::to_string(options_.stop_after));
    util::ensure_writable_directory(options_.out_dir);
    if (options_.resume) return;
    for (const char* name : kRunFiles) {
      const std::string path = options_.out_dir + "/" + name;
      if (!util::is_regular_file(path)) continue;
      if (!options_.overwrite)
        throw std::runtime_error(options_.out_dir + ": holds a training run (" + name +
                                 "); continue it with --resume, or start afresh with --overwrite");
      if (std::remove(path.c_str()) != 0) throw std::runtime_error(path + ": cannot remove it to overwrite the run");
    }
  }

  void build() {
    at::manual_seed(static_cast<uint64_t>(config_.train.seed));
    model_ = build_model(config_, split_.num_labeled_ids);
    if (!config_.train.init_from.empty()) init_from_checkpoint(*model_, config_.train.init_from);
    else if (!config_.model.backbone.weights.empty()) model_->load_backbone_weights(config_.model.backbone.weights);
    model_->to(options_.device);
    optimizer_ = make_optimizer(*model_, config_.train);
    if (config_.train.precision == "fp16") scaler_ = std::make_unique<LossScaler>(options_.device);
  }

  /// Restores everything from `path`; returns the iteration to continue from.
  int64_t resume(const std::string& path) {
    if (!util::is_regular_file(path)) throw std::runtime_error(path + ": no checkpoint to resume from");
    CheckpointContents c = load_checkpoint(path, optimizer_.get());
    const config::Config saved = config::parse_config(c.config_yaml, path + " (embedded config)");
    if (saved != config_) {
      std::string keys;
      for (const auto& d : config::differing_keys(config_, saved)) keys += (keys.empty() ? "" : "; ") + d;
      throw std::runtime_error(path + ": was written with a different config (" + keys + "; see " +
                               options_.out_dir + "/config.yaml); resume with the same config and overrides");
    }
    checkpoint::load_state_dict(*model_, c.state, checkpoint::Strictness::kStrict, path);
    if (c.rng_state.defined()) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(c.rng_state);
    }
    // A checkpoint of before 2026-12-07 has no scaler state: the scale starts afresh.
    if (scaler_ != nullptr && c.loss_scaler.defined()) scaler_->restore(c.loss_scaler);
    return c.iteration;
  }

  /// Writes the checkpoint `path` on rank 0. Other ranks write nothing, or with
  /// rank_checkpoints their own copy as <out>/rank<r>/<file name>.
  void save(std::string path, int64_t iteration) {
    if (!is_main()) {
      if (!options_.rank_checkpoints) return;
      const std::string folder = options_.out_dir + "/rank" + std::to_string(job_->rank());
      util::ensure_writable_directory(folder);
      path = folder + path.substr(path.find_last_of('/'));
    }
    CheckpointContents c;
    c.model_type = model_->type();
    c.config_yaml = config::to_yaml(config_);
    c.iteration = iteration;
    c.num_pids = model_->num_pids();
    c.state = model_state(*model_);
    c.rng_state = at::detail::getDefaultCPUGenerator().get_state();
    if (scaler_ != nullptr) c.loss_scaler = scaler_->state();
    save_checkpoint(path, c, optimizer_.get());
  }

  /// This rank's images of `iteration`, decoded by a worker thread while the previous
  /// iteration ran; then starts decoding iteration + 1. The data order, flips and shares
  /// depend only on the iteration, so prefetching changes nothing but the waiting. A file
  /// that cannot be read fails at the iteration that needs it.
  Batch take_batch(int64_t iteration) {
    Batch batch = prefetch_.valid() && prefetched_iteration_ == iteration ? prefetch_.get() : read_batch(iteration);
    if (iteration + 1 < stop_) {
      prefetched_iteration_ = iteration + 1;
      prefetch_ = std::async(std::launch::async, [this, next = iteration + 1] { return read_batch(next); });
    }
    return batch;
  }

  Batch read_batch(int64_t iteration) const {
    const int64_t epoch = iteration / schedule_.per_epoch;
    const std::vector<int64_t> order =
        epoch_order(static_cast<int64_t>(split_.images.size()), config_.train.seed, epoch);
    const Shard shard = job_ != nullptr ? Shard{job_->rank(), job_->world_size()} : Shard{};
    return load_batch(split_, order, schedule_, config_.train, iteration, options_.device, shard);
  }

  /// One iteration, queued on the device without waiting for it: a non-finite loss or
  /// gradient norm is noted in watch_ and reported at the next check().
  void step(int64_t iteration) {
    const double factor = schedule_.factor(iteration);
    set_learning_rate(*optimizer_, config_.train, factor);
    lr_ = config_.train.lr * factor;
    Batch batch = take_batch(iteration);
    {
      AutocastScope autocast(options_.device, precision_dtype(config_.train.precision));
      losses_ = model_->forward_train(batch.images, batch.targets);
    }
    // In a job a non-finite loss makes the averaged gradients non-finite on every rank, so
    // the gradient norm stops them all at the same check.
    if (job_ == nullptr) watch_.observe(losses_.at("loss"), kLossValue, iteration);
    optimizer_->zero_grad();
    const at::Tensor loss = scaler_ != nullptr ? scaler_->scale(losses_.at("loss")) : losses_.at("loss");
    if (gradients_ != nullptr) gradients_->backward(loss);
    else loss.backward();
    // fp16: a step whose gradients overflowed is skipped and the loss scale halves (in a
    // job the averaged gradients hold the overflow on every rank, so all ranks skip).
    if (scaler_ != nullptr && scaler_->unscale_and_update(model_->parameters())) {
      ++skipped_steps_;
      return;
    }
    // The norm before clipping is logged: a run whose norm always exceeds the bound is
    // effectively trained with a smaller learning rate.
    grad_norm_ = clip_grad_norm(
        model_->parameters(),
        config_.train.clip_grad_norm > 0 ? config_.train.clip_grad_norm : std::numeric_limits<double>::infinity());
    watch_.observe(grad_norm_, kGradNormValue, iteration);
    optimizer_->step();
  }

  void log_header(int64_t first, int64_t stop) const {
    if (!options_.verbose || !is_main()) return;
    std::cout << "training " << config_.model.type << " on " << split_.images.size() << " images ("
              << split_.num_labeled_ids << " labeled identities), " << schedule_.per_epoch << " iterations/epoch, "
              << (job_ != nullptr ? std::to_string(job_->world_size()) + " processes, " : std::string())
              << (first > 0 ? "resuming at " + std::to_string(first) + ", " : std::string()) << "until iteration "
              << stop << " of " << schedule_.total << std::endl;
  }

  /// Writes a log line (rank 0); in a job the loss terms are the means over the ranks, so
  /// every rank takes part.
  void log(int64_t iteration, double seconds_per_iteration) {
    std::vector<double> values{losses_.at("loss").item<double>()};
    for (const auto& key : model_->loss_names()) values.push_back(losses_.at(key).item<double>());
    if (job_ != nullptr) values = job_->mean(values);
    if (!is_main()) return;
    const double total = values[0];
    const double grad_norm = grad_norm_.defined() ? grad_norm_.item<double>() : 0.0;
    const double eta = seconds_per_iteration * static_cast<double>(schedule_.total - iteration);
    nlohmann::json line = {{"iteration", iteration}, {"epoch", static_cast<double>(iteration) / schedule_.per_epoch},
                           {"loss", total}, {"lr", lr_}, {"grad_norm", grad_norm}, {"seconds_per_iteration", seconds_per_iteration}};
    if (scaler_ != nullptr) {
      line["loss_scale"] = scaler_->current_scale();
      line["skipped_steps"] = skipped_steps_;
    }
    std::ostringstream text;
    text << std::fixed << "it " << iteration << "/" << schedule_.total << " ep " << std::setprecision(2)
         << static_cast<double>(iteration) / schedule_.per_epoch << " | loss " << std::setprecision(4) << total << " (";
    bool first_term = true;
    size_t term = 1;
    for (const auto& key : model_->loss_names()) {
      const double v = values[term++];
      line[key] = v;
      text << (first_term ? "" : " ") << short_loss_name(key) << " " << std::setprecision(4) << v;
      first_term = false;
    }
    text << ") | grad " << std::setprecision(2) << grad_norm << " | lr " << std::scientific << std::setprecision(2)
         << lr_ << std::fixed << " | " << std::setprecision(3)
         << seconds_per_iteration << " s/it | ETA " << format_duration(eta);
    if (options_.verbose) std::cout << text.str() << std::endl;
    util::append_line(options_.out_dir + "/log.jsonl", line.dump());
  }

  config::Config config_;
  TrainOptions options_;
  data::TrainSplit split_;
  Schedule schedule_;
  int64_t stop_ = 0;                  ///< the iteration this call of run() stops at
  std::future<Batch> prefetch_;       ///< the batch of prefetched_iteration_, being decoded
  int64_t prefetched_iteration_ = -1;
  ms::PersonSearchModel model_;
  std::unique_ptr<torch::optim::SGD> optimizer_;
  std::map<std::string, at::Tensor> losses_;
  double lr_ = 0;
  at::Tensor grad_norm_;  ///< [] of the last step that was taken, on the device
  static constexpr size_t kLossValue = 0, kGradNormValue = 1;
  DivergenceWatch watch_{{"loss", "gradient norm"}};
  distributed::ProcessGroup* job_ = nullptr;  ///< the data-parallel job, or null for one process
  std::unique_ptr<distributed::GradientAverager> gradients_;
  std::unique_ptr<LossScaler> scaler_;  ///< precision fp16 only
  int64_t skipped_steps_ = 0;           ///< fp16 steps skipped for overflowing gradients
};

}  // namespace

TrainResult train_model(const config::Config& config, const TrainOptions& options) {
  return Trainer(config, options).run();
}

}  // namespace psearch::engine
