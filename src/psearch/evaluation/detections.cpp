#include "psearch/evaluation/detections.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace psearch::evaluation {
namespace {

std::string shape(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

int64_t check_image_detections(const std::vector<data::ImageRecord>& images,
                               const std::vector<modeling::Detections>& detections, bool need_features) {
  if (detections.size() != images.size())
    throw std::invalid_argument("detections for " + std::to_string(detections.size()) + " images, the split has " +
                                std::to_string(images.size()));
  int64_t dim = -1;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& d = detections[i];
    const std::string where = "image " + images[i].name + ": ";
    if (!d.boxes.defined() || d.boxes.dim() != 2 || d.boxes.size(1) != 4)
      throw std::invalid_argument(where + "boxes must have shape [N, 4], got " + shape(d.boxes));
    const int64_t n = d.boxes.size(0);
    if (!d.scores.defined() || d.scores.dim() != 1 || d.scores.size(0) != n)
      throw std::invalid_argument(where + "scores must have shape [" + std::to_string(n) + "] (one per box), got " +
                                  shape(d.scores));
    if (!need_features) continue;
    if (!d.features.defined() || d.features.dim() != 2 || d.features.size(0) != n)
      throw std::invalid_argument(where + "features must have shape [" + std::to_string(n) + ", D], got " +
                                  shape(d.features));
    if (n == 0) continue;
    if (dim < 0) dim = d.features.size(1);
    if (d.features.size(1) != dim)
      throw std::invalid_argument(where + "features have " + std::to_string(d.features.size(1)) +
                                  " dimensions, other images " + std::to_string(dim));
  }
  return need_features ? std::max<int64_t>(dim, 0) : 0;
}

}  // namespace psearch::evaluation
