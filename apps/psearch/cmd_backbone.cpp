// `psearch backbone`: run a ResNet backbone (optionally from a torchvision checkpoint) and
// report its stage outputs and latency.
#include <ATen/Parallel.h>
#include <ATen/ops/randn.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "psearch/modeling/backbone/resnet.h"

namespace psearch::cli {
namespace {

struct BackboneArgs {
  std::string arch = "resnet50";
  std::string weights;
  bool non_strict = false;
  int64_t batch = 1, height = 512, width = 512;
  int repeat = 5;
  int threads = 0;
  std::string device = "cpu";
};

void run_backbone(const BackboneArgs& args) {
  apply_threads(args.threads);
  const c10::Device device = parse_device(args.device);
  modeling::ResNet model(modeling::ResNetOptions().depth(std::stoi(args.arch.substr(6))));
  if (args.weights.empty()) {
    std::cout << "weights: none given, random initialisation\n";
  } else {
    const auto strictness = args.non_strict ? checkpoint::Strictness::kNonStrict : checkpoint::Strictness::kStrict;
    const auto report = modeling::load_torchvision_resnet(*model, args.weights, strictness);
    std::cout << "weights: " << args.weights << " (" << report.loaded << " tensors loaded)" << report.describe()
              << "\n";
  }
  model->eval();
  model->to(device);
  torch::NoGradGuard no_grad;
  const at::Tensor images = at::randn({args.batch, 3, args.height, args.width}, at::TensorOptions().device(device));
  modeling::FeatureMap out;
  const double ms = median_ms([&] { out = model->forward(images); }, args.repeat, 1, device);

  std::cout << std::left << std::setw(7) << "stage" << std::setw(8) << "stride" << "shape\n";
  for (const auto& [stage, t] : out) {
    std::ostringstream shape;
    shape << t.sizes();
    std::cout << std::setw(7) << stage << std::setw(8) << modeling::ResNetImpl::stride(stage) << shape.str() << "\n";
  }
  std::cout << args.arch << " forward, batch " << args.batch << " at " << args.height << "x" << args.width << " on "
            << device << ": median " << std::fixed << std::setprecision(1) << ms << " ms over " << args.repeat
            << " runs\n";
}

void add_backbone_command(CLI::App& app) {
  auto args = std::make_shared<BackboneArgs>();
  auto* cmd = app.add_subcommand("backbone", "Run a ResNet backbone and report stage outputs C2..C5 and latency");
  cmd->add_option("--arch", args->arch, "Architecture")
      ->check(CLI::IsMember({"resnet18", "resnet34", "resnet50"}))
      ->capture_default_str();
  cmd->add_option("--weights", args->weights, "torchvision checkpoint (state_dict saved by torch.save)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--non-strict", args->non_strict, "Load only the keys that match; report the rest");
  cmd->add_option("--batch", args->batch, "Images per batch")->check(CLI::Range(int64_t{1}, int64_t{1024}))->capture_default_str();
  cmd->add_option("--height", args->height, "Input height")->check(CLI::Range(32, 4096))->capture_default_str();
  cmd->add_option("--width", args->width, "Input width")->check(CLI::Range(32, 4096))->capture_default_str();
  cmd->add_option("--repeat", args->repeat, "Timed runs")->check(CLI::Range(1, 100000))->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([args] { run_backbone(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(70, add_backbone_command);

}  // namespace psearch::cli
