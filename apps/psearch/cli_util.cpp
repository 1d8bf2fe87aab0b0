#include "cli_util.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "psearch/distributed/environment.h"
#include "psearch/distributed/local_launcher.h"

namespace psearch::cli {

c10::Device parse_device(const std::string& text) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text);
  } catch (const c10::Error&) {
    throw std::invalid_argument("bad device '" + text + "' (expected cpu, cuda or cuda:N)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("device '" + text + "' requested but no CUDA GPU is available");
  return device;
}

CLI::Option* add_threads_option(CLI::App* cmd, int& threads, const std::string& doc) {
  return cmd->add_option("--threads", threads, doc)->check(CLI::Range(0, kMaxThreads));
}

void apply_threads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

void add_job_options(CLI::App* cmd, JobArgs& job, const std::string& nproc_doc) {
  cmd->add_option("--nproc", job.nproc, nproc_doc + "; see docs/distributed.md")
      ->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--dist-timeout", job.dist_timeout,
                  "Seconds a rank waits for the others (rendezvous and each collective) before it fails")
      ->check(CLI::Range(1, 86400))->capture_default_str();
}

bool ran_as_local_job(const JobArgs& job) {
  if (job.nproc <= 1) return false;
  if (distributed::environment_from_variables().distributed())
    throw std::runtime_error("--nproc starts a job itself; it cannot be used inside one (WORLD_SIZE is set)");
  const int status = distributed::run_local_job(job.nproc, distributed::own_arguments_without("--nproc"));
  if (status != 0) std::exit(status);
  return true;
}

Percentiles percentiles(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    return samples[std::min(samples.size() - 1, static_cast<size_t>(q * static_cast<double>(samples.size() - 1) + 0.5))];
  };
  return {at(0.5), at(0.1), at(0.9)};
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

double median_ms(const std::function<void()>& fn, int repeat, int warmup, const c10::Device& device) {
  for (int i = 0; i < warmup; ++i) fn();
  synchronize(device);
  std::vector<double> times;
  for (int i = 0; i < std::max(repeat, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace psearch::cli
