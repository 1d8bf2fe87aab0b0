// A deployment of a `psearch export` file with LibTorch alone: no psearch header, no
// psearch library at link time. The psearch operators (nms, roi_align, deform_conv2d) come
// from libpsearch_ops.so, loaded at run time the way Python loads torchvision's.
//
//   run_exported MODEL.pt libpsearch_ops.so FRAME.f32 [x1 y1 x2 y2]
//
// FRAME.f32 holds the frame as raw float32 [3, H, W] RGB in [0, 1] (H x W: the exported
// size, in MODEL.pt's psearch.json). Prints the detections of the frame and, when a box
// is given, the embedding of that box; one "key: values" line each, for scripts.
#include <dlfcn.h>
#include <torch/script.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace {

void print_row(const std::string& key, const at::Tensor& row) {
  std::cout << key << ":" << std::setprecision(9);
  const at::Tensor values = row.contiguous().to(at::kDouble);
  for (int64_t i = 0; i < values.numel(); ++i) std::cout << " " << values.data_ptr<double>()[i];
  std::cout << "\n";
}

at::Tensor read_frame(const std::string& path, int64_t height, int64_t width) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t expected = static_cast<size_t>(3 * height * width) * sizeof(float);
  if (!in.good() && !in.eof()) throw std::runtime_error(path + ": cannot read");
  if (bytes.size() != expected)
    throw std::runtime_error(path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                             std::to_string(expected) + " (float32 [3, " + std::to_string(height) + ", " +
                             std::to_string(width) + "])");
  return torch::from_blob(bytes.data(), {3, height, width}, at::kFloat).clone();
}

/// The exported frame size, from the file's psearch.json ("input_size": [H, W]).
std::pair<int64_t, int64_t> input_size(const std::string& metadata) {
  const auto key = metadata.find("\"input_size\"");
  const auto open = metadata.find('[', key);
  if (key == std::string::npos || open == std::string::npos) throw std::runtime_error("psearch.json has no input_size");
  const int64_t height = std::stoll(metadata.substr(open + 1));
  const auto comma = metadata.find(',', open);
  return {height, std::stoll(metadata.substr(comma + 1))};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 8) {
    std::cerr << "usage: run_exported MODEL.pt libpsearch_ops.so FRAME.f32 [x1 y1 x2 y2]\n";
    return 2;
  }
  try {
    if (!dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL)) throw std::runtime_error(std::string("cannot load ") + dlerror());
    torch::jit::ExtraFilesMap extra{{"psearch.json", ""}};
    torch::jit::Module model = torch::jit::load(argv[1], c10::nullopt, extra);
    model.eval();
    const auto [height, width] = input_size(extra["psearch.json"]);
    const at::Tensor frame = read_frame(argv[3], height, width);
    torch::NoGradGuard no_grad;
    const auto out = model.forward({frame}).toTuple()->elements();
    const at::Tensor boxes = out[0].toTensor(), scores = out[1].toTensor(), features = out[2].toTensor();
    std::cout << "detections: " << boxes.size(0) << "\n";
    for (int64_t i = 0; i < boxes.size(0); ++i) {
      print_row("box", boxes[i]);
      print_row("score", scores.narrow(0, i, 1));
      print_row("feature", features[i]);
    }
    if (argc == 8) {
      const at::Tensor query = torch::tensor({std::stof(argv[4]), std::stof(argv[5]), std::stof(argv[6]),
                                              std::stof(argv[7])}).view({1, 4});
      print_row("query_feature", model.get_method("embed")({frame, query}).toTensor()[0]);
    }
  } catch (const std::exception& e) {
    std::cerr << "run_exported: " << std::string(e.what()).substr(0, std::string(e.what()).find('\n')) << "\n";
    return 1;
  }
  return 0;
}
