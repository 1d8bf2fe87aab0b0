// `psearch info`: what this build has: versions, registered ops and their kernels, devices.
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/cuda.h>

#include <iomanip>
#include <iostream>

#include "commands.h"
#include "psearch/util/version.h"

namespace psearch::cli {
namespace {

const char* kOps[] = {"nms", "batched_nms", "roi_align", "_roi_align_backward", "deform_conv2d",
                      "_deform_conv2d_backward"};

std::string kernels_of(const std::string& op) {
  auto handle = c10::Dispatcher::singleton().findOp({"psearch::" + op, ""});
  if (!handle) return "not registered";
  std::string out;
  for (auto [key, name] : {std::pair{c10::DispatchKey::CPU, "CPU"}, std::pair{c10::DispatchKey::CUDA, "CUDA"},
                           std::pair{c10::DispatchKey::Autograd, "Autograd"},
                           std::pair{c10::DispatchKey::CompositeImplicitAutograd, "Composite"}}) {
    if (handle->hasKernelForDispatchKey(key)) out += std::string(out.empty() ? "" : ", ") + name;
  }
  return out;
}

void run_info() {
  std::cout << build_info() << "\n"
            << "CPU threads: " << at::get_num_threads() << "\n"
            << "CUDA devices: " << (torch::cuda::is_available() ? torch::cuda::device_count() : 0) << "\n"
            << "operators (psearch::):\n";
  for (const char* op : kOps) std::cout << "  " << std::left << std::setw(26) << op << kernels_of(op) << "\n";
}

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show the build: versions, operators and their kernels, devices");
  cmd->callback(run_info);
}

}  // namespace

PSEARCH_REGISTER_COMMAND(90, add_info_command);

}  // namespace psearch::cli
