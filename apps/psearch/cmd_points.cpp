// `psearch points`: draws where a trained PCNet's Contextual Points Pooling samples for each
// detection of an image, as a PNG (the PCNet paper's Fig. 5):
//   psearch points --checkpoint out/pcnet/final.pt --image frame.jpg --out points.png
// Each detection's box is drawn with its 9 sampling points, coloured by kernel row (the
// distance loss's sets: top red, middle green, bottom blue).
#include <ATen/ops/clamp.h>
#include <c10/core/GradMode.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <iostream>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/image_io.h"
#include "psearch/engine/model_builder.h"
#include "psearch/modeling/one_stage/pcnet_model.h"
#include "psearch/util/atomic_file.h"

namespace psearch::cli {
namespace {

struct PointsArgs {
  std::string checkpoint, image, out = "points.png", device = "cpu";
  double min_score = 0.5;
  int max_detections = 20;
};

void run_points(const PointsArgs& args) {
  engine::TrainedModel trained = engine::load_trained_model(args.checkpoint, parse_device(args.device));
  auto pcnet = std::dynamic_pointer_cast<modeling::PCNetModelImpl>(trained.model);
  if (!pcnet)
    throw std::runtime_error(args.checkpoint + ": holds a '" + trained.model->type() +
                             "' model; sampling points exist for 'pcnet' models only");
  const at::Tensor image = data::read_image(args.image);
  c10::NoGradGuard no_grad;
  const modeling::CppPoints p = pcnet->sampling_points(image.to(pcnet->parameters().front().device()));
  const at::Tensor boxes = p.boxes.cpu(), scores = p.scores.cpu(), points = p.points.cpu();

  cv::Mat canvas = data::bgr_image(image);
  const cv::Scalar row_colours[3] = {{40, 40, 230}, {40, 200, 40}, {230, 90, 30}};
  int drawn = 0;
  for (int64_t i = 0; i < boxes.size(0) && drawn < args.max_detections; ++i) {
    if (scores[i].item<double>() < args.min_score) continue;
    const auto b = boxes[i];
    cv::rectangle(canvas, cv::Point(b[0].item<int>(), b[1].item<int>()), cv::Point(b[2].item<int>(), b[3].item<int>()),
                  cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    for (int k = 0; k < 9; ++k) {
      const cv::Point pt(static_cast<int>(points[i][k][0].item<double>()), static_cast<int>(points[i][k][1].item<double>()));
      cv::circle(canvas, pt, 3, row_colours[k / 3], cv::FILLED, cv::LINE_AA);
    }
    ++drawn;
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", canvas, png)) throw std::runtime_error(args.out + ": cannot encode PNG");
  util::write_bytes_atomically(args.out, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
  std::cout << "drew " << drawn << " of " << boxes.size(0) << " detections (score >= " << args.min_score
            << ") with their CPP sampling points: " << args.out << "\n";
}

void add_points_command(CLI::App& app) {
  auto args = std::make_shared<PointsArgs>();
  auto* cmd = app.add_subcommand("points", "Draw a PCNet's CPP sampling points for each detection of an image (PNG)");
  cmd->add_option("--checkpoint", args->checkpoint, "Trained PCNet checkpoint")->required()->check(CLI::ExistingFile);
  cmd->add_option("--image", args->image, "Image (JPEG, PNG, ...)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "PNG to write")->capture_default_str();
  cmd->add_option("--min-score", args->min_score, "Draw detections with at least this score")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--max", args->max_detections, "Draw at most this many detections")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--device", args->device, "cpu or cuda")->capture_default_str();
  cmd->callback([args] { run_points(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(37, add_points_command);

}  // namespace psearch::cli
