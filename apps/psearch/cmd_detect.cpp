// `psearch detect`: runs the pretrained pedestrian detector (SSDLite-MobileNetV2, installed
// by set-up) on a video or on images, and writes each frame with its boxes as a PNG plus
// every detection as JSON:
//   psearch detect /usr/share/doc/opencv-doc/examples/data/vtest.avi --every 100 --out out/detect
// --input-size runs the fully convolutional network at another size than the 300 x 300 it
// was trained at (anchors regenerated), which finds smaller people.
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "psearch/data/image_io.h"
#include "psearch/data/video.h"
#include "psearch/gallery/indexer.h"
#include "psearch/modeling/detector/ssdlite_person.h"
#include "psearch/util/atomic_file.h"
#include "psearch/util/progress.h"

namespace psearch::cli {
namespace {

struct DetectArgs {
  std::vector<std::string> inputs;
  std::string out = "out/detect", weights, device = "cpu";
  std::vector<int64_t> input_size{300, 300};
  double min_score = 0.5;
  int64_t every = 1, max_frames = 0;
  int threads = 0;
  bool no_images = false;
};

/// [3, H, W] RGB in [0, 1] with its boxes drawn -> PNG bytes.
std::vector<uchar> draw_png(const at::Tensor& rgb, const modeling::Detections& d, const std::string& path) {
  cv::Mat canvas = data::bgr_image(rgb);
  const auto boxes = d.boxes.accessor<float, 2>();
  const auto scores = d.scores.accessor<float, 1>();
  for (int64_t i = 0; i < d.boxes.size(0); ++i) {
    const cv::Point p1(static_cast<int>(boxes[i][0]), static_cast<int>(boxes[i][1]));
    const cv::Point p2(static_cast<int>(boxes[i][2]), static_cast<int>(boxes[i][3]));
    cv::rectangle(canvas, p1, p2, cv::Scalar(40, 220, 40), 2, cv::LINE_AA);
    std::ostringstream label;
    label << std::fixed << std::setprecision(2) << scores[i];
    cv::putText(canvas, label.str(), p1 + cv::Point(2, 14), cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(40, 220, 40), 1,
                cv::LINE_AA);
  }
  std::vector<uchar> png;
  if (!cv::imencode(".png", canvas, png)) throw std::runtime_error(path + ": cannot encode PNG");
  return png;
}

/// Detections of one frame above min_score, as JSON.
nlohmann::json to_json(const modeling::Detections& d, const std::string& source, int64_t frame, double time) {
  nlohmann::json people = nlohmann::json::array();
  const auto boxes = d.boxes.accessor<float, 2>();
  const auto scores = d.scores.accessor<float, 1>();
  for (int64_t i = 0; i < d.boxes.size(0); ++i)
    people.push_back({{"box", {boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3]}}, {"score", scores[i]}});
  return {{"source", source}, {"frame", frame}, {"time", time}, {"detections", people}};
}

/// Keeps the detections with score >= min_score.
modeling::Detections above(const modeling::Detections& d, double min_score) {
  const at::Tensor keep = d.scores >= min_score;
  return {d.boxes.index({keep}), d.scores.index({keep}), {}};
}

void run_detect(const DetectArgs& args) {
  apply_threads(args.threads);
  c10::NoGradGuard no_grad;
  util::ensure_writable_directory(args.out);
  modeling::SSDLitePerson detector(
      modeling::SSDLitePersonOptions().input_size({args.input_size.at(0), args.input_size.at(1)}));
  const std::string weights =
      args.weights.empty() ? modeling::pretrained_weights_path("ssdlite_person.pth") : args.weights;
  modeling::load_ssdlite_person(*detector, weights);
  detector->to(parse_device(args.device));
  detector->eval();

  nlohmann::json frames = nlohmann::json::array();
  int64_t processed = 0, found = 0;
  const auto start = std::chrono::steady_clock::now();
  auto handle = [&](const at::Tensor& image, const std::string& source, int64_t index, double time) {
    const modeling::Detections d = above(detector->detect({image})[0], args.min_score);
    frames.push_back(to_json(d, source, index, time));
    found += d.boxes.size(0);
    ++processed;
    if (args.no_images) return;
    std::ostringstream name;
    name << std::filesystem::path(source).stem().string() << "_f" << std::setw(6) << std::setfill('0') << index
         << ".png";
    const std::string path = (std::filesystem::path(args.out) / name.str()).string();
    const auto png = draw_png(image, d, path);
    util::write_bytes_atomically(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
  };
  for (const std::string& input : args.inputs) {
    if (gallery::is_image_path(input)) {
      handle(data::read_image(input), input, 0, 0.0);
      continue;
    }
    data::VideoReader video(input);
    int64_t planned = (video.frame_count() + args.every - 1) / args.every;
    if (args.max_frames > 0) planned = std::min(planned, args.max_frames);
    util::ProgressBar bar(std::filesystem::path(input).filename().string(), planned, "frame");
    data::VideoFrame frame;
    for (int64_t n = 0; (args.max_frames == 0 || n < args.max_frames) && video.next(frame, args.every); ++n) {
      handle(frame.image, input, frame.index, frame.timestamp);
      bar.advance();
    }
    bar.finish();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string json_path = (std::filesystem::path(args.out) / "detections.json").string();
  util::write_text_atomically(json_path, frames.dump(1) + "\n");
  std::cout << std::fixed << std::setprecision(2) << "ssdlite_person at " << args.input_size[0] << "x"
            << args.input_size[1] << ": " << processed << " frames, " << found << " people with score >= "
            << args.min_score << " (" << (processed ? static_cast<double>(found) / processed : 0.0)
            << " per frame), " << (seconds > 0 ? processed / seconds : 0.0) << " frames/s\n"
            << "wrote " << json_path << (args.no_images ? "" : " and one PNG per frame") << "\n";
}

void add_detect_command(CLI::App& app) {
  auto args = std::make_shared<DetectArgs>();
  auto* cmd = app.add_subcommand("detect", "Run the pretrained pedestrian detector on videos or images (PNG + JSON)");
  cmd->add_option("inputs", args->inputs, "Video files (AVI, MP4, ...) or images")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Folder for the PNGs and detections.json")->capture_default_str();
  cmd->add_option("--weights", args->weights, "Converted detector (default: set-up's ssdlite_person.pth)");
  cmd->add_option("--input-size", args->input_size, "Network input height width (trained at 300 300)")
      ->expected(2)
      ->check(CLI::Range(32, 4096))
      ->capture_default_str();
  cmd->add_option("--min-score", args->min_score, "Keep people with at least this score")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--every", args->every, "Use every N-th video frame")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--max-frames", args->max_frames, "Stop after this many frames per video (0: all)")
      ->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  cmd->add_flag("--no-images", args->no_images, "Write only detections.json");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_detect(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(38, add_detect_command);

}  // namespace psearch::cli
