// `psearch export`: writes a trained model (or the pretrained separate pipeline) as one
// self-contained TorchScript file for a fixed frame size, loadable by LibTorch and the
// psearch operator library alone (docs/export.md):
//   psearch export --checkpoint out/demo/oim_mnv2/final.pt \
//       --example /usr/share/doc/opencv-doc/examples/data/vtest.avi --out out/export/oim.pt
// The example (an image or a video) fixes the frame size and is used to verify the trace.
#include <ATen/ops/upsample_bilinear2d.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/image_io.h"
#include "psearch/data/video.h"
#include "psearch/deploy/torchscript_export.h"
#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/indexer.h"

namespace psearch::cli {
namespace {

struct ExportArgs {
  std::string checkpoint, model = "separate", example, out;
  std::vector<std::string> overrides;
  std::vector<int64_t> size;
  double tolerance = 1e-3;
  int threads = 0;
};

/// Frames to trace and check on: an image and its mirror image, or four frames spread
/// over a video (the first is traced).
std::vector<at::Tensor> example_frames(const std::string& path) {
  if (gallery::is_image_path(path)) {
    const at::Tensor image = data::read_image(path);
    return {image, image.flip({2}).contiguous()};
  }
  data::VideoReader video(path);
  const int64_t step = std::max<int64_t>(video.frame_count() / 4, 1);
  std::vector<at::Tensor> frames;
  data::VideoFrame frame;
  while (frames.size() < 4 && video.next(frame, step)) frames.push_back(frame.image);
  if (frames.empty()) throw std::runtime_error(path + ": no frame could be decoded");
  if (frames.size() == 1) frames.push_back(frames[0].flip({2}).contiguous());
  return frames;
}

at::Tensor resized(const at::Tensor& image, const std::vector<int64_t>& size) {
  if (size.empty() || (image.size(1) == size[0] && image.size(2) == size[1])) return image;
  return at::upsample_bilinear2d(image.unsqueeze(0), {size[0], size[1]}, /*align_corners=*/false).squeeze(0);
}

void run_export(const ExportArgs& args) {
  apply_threads(args.threads);
  std::vector<at::Tensor> frames = example_frames(args.example);
  for (auto& frame : frames) frame = resized(frame, args.size);
  gallery::GalleryModel loaded =
      gallery::load_gallery_model(args.checkpoint, args.model, args.overrides, c10::Device(c10::kCPU));
  const deploy::ExportReport report = deploy::export_torchscript(loaded.network, frames, args.out, args.tolerance);
  std::cout << std::setprecision(3) << "exported " << loaded.identity.type << " for " << frames[0].size(1) << "x"
            << frames[0].size(2) << " frames to " << args.out << "\n"
            << "check: traced vs model on " << frames.size() << " frames (detections:";
  for (const int64_t n : report.detections) std::cout << " " << n;
  std::cout << "), max |difference| " << report.max_abs_diff << " (boxes, scores, features, query features)\n";
}

void add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "Write a model as a self-contained TorchScript file for one frame size");
  cmd->add_option("--checkpoint", args->checkpoint, "Trained model (psearch train); default: --model")
      ->check(CLI::ExistingFile);
  cmd->add_option("--model", args->model, "Model without training, when no --checkpoint: separate")
      ->capture_default_str();
  cmd->add_option("--set", args->overrides, "KEY=VALUE config overrides of the model (e.g. inference.det_thresh=0.6)");
  cmd->add_option("--example", args->example, "An image or video of the deployment: its frame size is exported, "
                                              "and the trace is checked on its frames (video: 4 spread frames)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--size", args->size, "Frame height width to export instead of the example's (frames are resized)")
      ->expected(2)
      ->check(CLI::Range(32, 8192));
  cmd->add_option("--out", args->out, "TorchScript file to write")->required();
  cmd->add_option("--tolerance", args->tolerance, "Largest accepted |traced - model| (pixels, scores, features)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_export(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(43, add_export_command);

}  // namespace psearch::cli
