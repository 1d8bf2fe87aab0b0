// `psearch bench`: inference speed of every model, one table: model, input size,
// precision, batch, median ms per frame (p10-p90), frames/s, detections per frame, peak
// host and GPU memory. Models are built with random weights (the speed of a network does
// not depend on its weights; the separate pipeline uses its pretrained files), on one
// frame of Debian's vtest.avi resized to the input size (random pixels without it).
//   psearch bench                                   # the five joint models + separate, 900 x 1500
//   psearch bench configs/pcnet_light_prw.yaml --size 800 1333 --batch 1,4 --device cuda
// bench/bench_models.py runs torchvision's detectors in the same invocation and prints the
// ratios (docs/benchmarks.md).
#include <ATen/Parallel.h>
#include <ATen/ops/rand.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

#include "cli_util.h"
#include "commands.h"
#include "psearch/boxes/box_ops.h"
#include "psearch/config/config.h"
#include "psearch/data/video.h"
#include "psearch/engine/mixed_precision.h"
#include "psearch/engine/model_builder.h"
#include "psearch/modeling/layers/memory_format.h"
#include "psearch/modeling/person_search_model.h"
#include "psearch/util/atomic_file.h"
#include "psearch/util/file_status.h"

#ifdef PSEARCH_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace psearch::cli {
namespace {

const std::vector<std::string> kDefaultModels{"configs/oim_prw.yaml",   "configs/nae_prw.yaml",
                                              "configs/nae_plus_prw.yaml", "configs/pcnet_prw.yaml",
                                              "configs/pcnet_light_prw.yaml", "separate"};
constexpr const char* kVtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

struct BenchArgs {
  std::vector<std::string> models;
  std::vector<int64_t> size{900, 1500}, batches{1};
  int repeat = 10, warmup = 2, threads = 0;
  std::string device = "cpu", image = kVtest, json;
  std::vector<std::string> precisions{"fp32"};
  std::vector<std::string> memory_formats{"contiguous"};
};

/// Frame 0 of `path` resized to height x width as [3, H, W] RGB in [0, 1]; random pixels
/// when the file is not there (the figures then say so).
at::Tensor bench_image(const std::string& path, int64_t height, int64_t width, bool& real) {
  real = util::is_regular_file(path);
  if (!real) return at::rand({3, height, width});
  cv::VideoCapture capture(path);
  cv::Mat frame, resized;
  if (!capture.read(frame) || frame.empty()) throw std::runtime_error(path + ": cannot read a frame");
  cv::resize(frame, resized, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0, cv::INTER_LINEAR);
  return data::rgb_tensor_from_bgr(resized.data, resized.rows, resized.cols);
}

/// The model `spec` names (a config file, or a type that needs no training), random weights,
/// resized to keep an image of `size` as it is.
modeling::PersonSearchModel build_bench_model(const std::string& spec, const std::vector<int64_t>& size) {
  const int64_t short_side = std::min(size[0], size[1]), long_side = std::max(size[0], size[1]);
  std::vector<std::string> overrides{"inference.min_size=" + std::to_string(short_side),
                                     "inference.max_size=" + std::to_string(long_side)};
  config::Config config;
  if (util::is_regular_file(spec)) {
    overrides.push_back("model.backbone.weights=\"\"");  // random weights: speed only
    config = config::load_config(spec, overrides);
  } else {
    config = config::parse_config("model:\n  type: " + spec + "\n", spec, overrides);
  }
  return engine::build_model(config, 100);
}

/// Peak resident memory of this process since the last reset, in MB (Linux VmHWM).
double peak_host_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0.0;
}
void reset_peak_host() { std::ofstream("/proc/self/clear_refs") << "5"; }

double peak_gpu_mb(const c10::Device& device, bool reset) {
#ifdef PSEARCH_WITH_CUDA
  if (device.is_cuda()) {
    const auto index = device.index() < 0 ? 0 : device.index();
    if (reset) {
      c10::cuda::CUDACachingAllocator::resetPeakStats(index);
      return 0.0;
    }
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return static_cast<double>(stats.reserved_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  (void)device;
  (void)reset;
  return -1.0;
}

struct Row {
  std::string model, type, precision = "fp32", memory_format = "contiguous";
  int64_t batch = 1;
  double median = 0, p10 = 0, p90 = 0, detections = 0, host_mb = 0, gpu_mb = -1;
  /// Against the batch's first row (fp32 unless asked otherwise) on the same image: the
  /// share of its detections found again (same box within IoU 0.9), and the lowest cosine
  /// between the embeddings of such a pair.
  double matched = -1, min_cosine = -1;
  std::vector<modeling::Detections> output;  ///< the last run's detections
};

/// How a run agrees with the reference run (fp32, contiguous): matched share and lowest
/// embedding cosine.
void compare_with_reference(Row& row, const Row& reference) {
  int64_t total = 0, found = 0;
  double lowest = 1.0;
  for (size_t i = 0; i < reference.output.size(); ++i) {
    const modeling::Detections& ref = reference.output[i];
    const modeling::Detections& got = row.output[i];
    total += ref.boxes.size(0);
    if (ref.boxes.size(0) == 0 || got.boxes.size(0) == 0) continue;
    const at::Tensor iou = boxes::box_iou(ref.boxes, got.boxes.to(at::kFloat));
    const auto [best, index] = iou.max(1);
    for (int64_t k = 0; k < ref.boxes.size(0); ++k) {
      if (best[k].item<float>() < 0.9f) continue;
      ++found;
      const at::Tensor a = ref.features[k], b = got.features[index[k].item<int64_t>()].to(at::kFloat);
      lowest = std::min(lowest, (a * b).sum().item<double>() / (a.norm() * b.norm()).item<double>());
    }
  }
  row.matched = total > 0 ? static_cast<double>(found) / static_cast<double>(total) : 1.0;
  row.min_cosine = found > 0 ? lowest : -1;
}

Row time_model(const std::string& spec, modeling::SearchModel& model, const at::Tensor& image, int64_t batch,
               const std::string& precision, const std::string& memory_format, const BenchArgs& args,
               const c10::Device& device) {
  const std::vector<at::Tensor> images(static_cast<size_t>(batch), image);
  engine::AutocastScope autocast(device, engine::precision_dtype(precision));
  Row row;
  row.model = spec;
  row.type = model.name();
  row.batch = batch;
  row.precision = precision;
  row.memory_format = memory_format;
  reset_peak_host();
  peak_gpu_mb(device, true);
  for (int i = 0; i < args.warmup; ++i) model.detect_batch(images);
  synchronize(device);
  std::vector<double> ms;
  int64_t found = 0;
  for (int i = 0; i < std::max(args.repeat, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto detections = model.detect_batch(images);
    synchronize(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / batch);
    for (const auto& d : detections) found += d.boxes.size(0);
    row.output = std::move(detections);
  }
  const Percentiles p = percentiles(ms);
  row.median = p.median;
  row.p10 = p.p10;
  row.p90 = p.p90;
  row.detections = static_cast<double>(found) / (static_cast<double>(ms.size()) * batch);
  row.host_mb = peak_host_mb();
  row.gpu_mb = peak_gpu_mb(device, false);
  return row;
}

/// One line of the table.
void print_row(const Row& r, const BenchArgs& args) {
  const std::string gpu = r.gpu_mb < 0 ? "-" : std::to_string(static_cast<int64_t>(r.gpu_mb));
  const std::string agreement =
      r.matched < 0 ? "-"
                    : std::to_string(r.matched).substr(0, 5) + ", " +
                          (r.min_cosine < 0 ? std::string("-") : std::to_string(r.min_cosine).substr(0, 6));
  std::cout << std::fixed << std::setprecision(1) << "| " << r.type << " (" << r.model << ") | " << args.size[0] << "x"
            << args.size[1] << " | " << r.precision << " | " << r.memory_format << " | " << r.batch << " | " << r.median
            << " (" << r.p10 << "-" << r.p90 << ") | " << std::setprecision(2) << 1000.0 / r.median << " | "
            << std::setprecision(1) << r.detections << " | " << std::setprecision(0) << r.host_mb << " | " << gpu
            << " | " << agreement << " |" << std::endl;
}

/// The row as --json writes it (bench/bench_models.py reads it).
nlohmann::json json_row(const Row& r, const BenchArgs& args, const c10::Device& device) {
  return {{"model", r.model},
          {"type", r.type},
          {"height", args.size[0]},
          {"width", args.size[1]},
          {"precision", r.precision},
          {"memory_format", r.memory_format},
          {"batch", r.batch},
          {"ms_per_frame", r.median},
          {"p10", r.p10},
          {"p90", r.p90},
          {"detections_per_frame", r.detections},
          {"peak_host_mb", r.host_mb},
          {"peak_gpu_mb", r.gpu_mb},
          {"device", device.str()},
          {"threads", at::get_num_threads()},
          {"matched_vs_first_row", r.matched},
          {"min_cosine_vs_first_row", r.min_cosine}};
}

void run_bench(BenchArgs args) {
  apply_threads(args.threads);
  c10::NoGradGuard no_grad;
  if (args.models.empty()) args.models = kDefaultModels;
  const c10::Device device = parse_device(args.device);
  bool real = false;
  const at::Tensor image = bench_image(args.image, args.size[0], args.size[1], real).to(device);
  std::cout << "psearch bench: " << args.size[0] << " x " << args.size[1] << " "
            << (real ? "(frame 0 of " + args.image + ")" : std::string("(random pixels)")) << ", "
            << device.str() << ", " << at::get_num_threads() << " threads, median of " << args.repeat
            << " after " << args.warmup << " warm-up runs; random weights except the separate pipeline's\n\n"
            << "| model | input | precision | layout | batch | ms/frame (p10-p90) | fps | detections/frame | "
               "peak host MB | peak GPU MB | vs first row: matched, min cosine |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|\n";
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& spec : args.models) {
    modeling::PersonSearchModel built = build_bench_model(spec, args.size);
    engine::prepare_for_inference(*built, config::Config{}, device);  // contiguous; the loop sets the layout
    modeling::PersonSearchAdapter model(built);
    for (const int64_t batch : args.batches) {
      std::optional<Row> reference;  // the batch's first row
      for (const std::string& layout : args.memory_formats) {
        modeling::set_memory_format(*built, modeling::memory_format_from_name(layout));
        for (const std::string& precision : args.precisions) {
          Row r = time_model(spec, model, image, batch, precision, layout, args, device);
          if (!reference) reference = r;
          else compare_with_reference(r, *reference);
          print_row(r, args);
          rows.push_back(json_row(r, args, device));
        }
      }
      modeling::set_memory_format(*built, at::MemoryFormat::Contiguous);
    }
  }
  if (!args.json.empty()) util::write_text_atomically(args.json, rows.dump(1) + "\n");
}

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Inference speed and memory of the person-search models (a table)");
  cmd->add_option("models", args->models,
                  "Config files or model types without training (default: configs/{oim,nae,nae_plus,pcnet,"
                  "pcnet_light}_prw.yaml separate)");
  cmd->add_option("--size", args->size, "Input height width")->expected(2)->check(CLI::Range(32, 8192))->capture_default_str();
  cmd->add_option("--batch", args->batches, "Batch sizes, e.g. 1,4")->delimiter(',')->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--repeat", args->repeat, "Timed runs per row")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed runs first")->check(CLI::Range(0, 1000))->capture_default_str();
  cmd->add_option("--image", args->image, "Video or image whose first frame is the input")->capture_default_str();
  cmd->add_option("--json", args->json, "Also write the rows as JSON (bench/bench_models.py reads it)");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--precision", args->precisions,
                  "fp32, bf16, fp16 (autocast), e.g. fp32,bf16: each row after fp32 also says how its detections "
                  "agree with fp32's")
      ->delimiter(',')->check(CLI::IsMember(engine::precision_names()))->capture_default_str();
  cmd->add_option("--memory-format", args->memory_formats,
                  "contiguous, channels_last (weights stored NHWC, so activations follow), e.g. "
                  "contiguous,channels_last: every precision in every layout, compared with the first row")
      ->delimiter(',')->check(CLI::IsMember(modeling::memory_format_names()))->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(84, add_bench_command);

}  // namespace psearch::cli
