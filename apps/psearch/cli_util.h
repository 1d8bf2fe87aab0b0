#pragma once
// Small helpers shared by the subcommands.
#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace psearch::cli {

/// "cpu", "cuda" or "cuda:N"; a CUDA device on a machine without one is an error
/// that says so instead of failing deep inside LibTorch.
c10::Device parse_device(const std::string& text);

/// The most CPU threads a command accepts: far above any machine's useful count, far below
/// a number that would exhaust the process table.
constexpr int kMaxThreads = 256;

/// Adds --threads (0: LibTorch's default, else 1..kMaxThreads; anything else is a usage
/// error) bound to `threads`. `doc` overrides the help text.
CLI::Option* add_threads_option(CLI::App* cmd, int& threads, const std::string& doc = "CPU threads (0: LibTorch default)");

/// Applies a --threads value to LibTorch's intra-op pool (0 leaves the default).
void apply_threads(int threads);

/// --nproc and --dist-timeout of the commands that run as a data-parallel job
/// (docs/distributed.md); `nproc_doc` says what the processes share.
struct JobArgs {
  int nproc = 1;
  int dist_timeout = 1800;
};
void add_job_options(CLI::App* cmd, JobArgs& job, const std::string& nproc_doc);

/// With --nproc N > 1, runs this command as N processes on this machine (the same
/// arguments less --nproc) and returns true once they succeeded; exits with the job's
/// status when a process failed. Refuses --nproc inside a job. False: run as usual.
bool ran_as_local_job(const JobArgs& job);

/// Median, 10th and 90th percentile (nearest rank) of `samples`, which must not be empty.
struct Percentiles {
  double median = 0, p10 = 0, p90 = 0;
};
Percentiles percentiles(std::vector<double> samples);

/// Waits until `device` has finished its queued work (no-op on the CPU), so timings count it.
void synchronize(const c10::Device& device);

/// Runs `fn` `warmup` times untimed, then `repeat` times; returns the median in ms.
/// Waits for the device after each run so GPU work is counted.
double median_ms(const std::function<void()>& fn, int repeat, int warmup, const c10::Device& device);

}  // namespace psearch::cli
