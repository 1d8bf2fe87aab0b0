#include "psearch/gallery/query.h"

#include <ATen/ops/tensor.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "psearch/data/image_io.h"
#include "psearch/gallery/report.h"

namespace psearch::gallery {

void check_query_box(float box[4], int64_t width, int64_t height, const std::string& what) {
  std::ostringstream text;
  text << "[" << box[0] << ", " << box[1] << ", " << box[2] << ", " << box[3] << "]";
  if (!(box[2] > box[0] && box[3] > box[1]))
    throw std::runtime_error(what + ": query box " + text.str() + " is empty (x2 must exceed x1, y2 y1)");
  if (box[2] <= 0 || box[3] <= 0 || box[0] >= width || box[1] >= height)
    throw std::runtime_error(what + ": query box " + text.str() + " lies outside the " + std::to_string(width) + " x " +
                             std::to_string(height) + " image");
  box[0] = std::max(box[0], 0.0f);
  box[1] = std::max(box[1], 0.0f);
  box[2] = std::min(box[2], static_cast<float>(width));
  box[3] = std::min(box[3], static_cast<float>(height));
  if (box[2] - box[0] < 2 || box[3] - box[1] < 2)
    throw std::runtime_error(what + ": query box " + text.str() + " keeps less than 2 x 2 pixels inside the image");
}

Query query_from_image(const at::Tensor& image, std::vector<double> box, GalleryModel& model,
                       const std::string& description) {
  Query q;
  for (int k = 0; k < 4; ++k) q.box[k] = static_cast<float>(box.at(k));
  check_query_box(q.box, image.size(2), image.size(1), description);
  const at::Tensor boxes = at::tensor({q.box[0], q.box[1], q.box[2], q.box[3]}, at::kFloat).reshape({1, 4});
  q.embedding = model.model->embed(image, boxes)[0].contiguous();
  q.image = image;
  std::ostringstream text;
  text << description << " box [" << q.box[0] << ", " << q.box[1] << ", " << q.box[2] << ", " << q.box[3] << "]";
  q.description = text.str();
  return q;
}

Query query_from_image(const std::string& image_path, const std::vector<double>& box, const ModelIdentity& recorded,
                       const std::string& checkpoint, c10::Device device) {
  const at::Tensor image = data::read_image(image_path);
  std::vector<float> checked(box.begin(), box.end());
  check_query_box(checked.data(), image.size(2), image.size(1), image_path);  // before loading the model
  GalleryModel model = load_recorded_model(recorded, checkpoint, device);
  return query_from_image(image, box, model, image_path);
}

Query query_from_detection(const GalleryStore& store, int64_t id) {
  Query q;
  q.embedding = store.embedding(id);
  const DetectionRecord d = store.detections({id}).at(0);
  std::copy(d.box, d.box + 4, q.box);
  const auto frames = read_frames({d});
  const auto it = frames.find({d.source_id, d.frame});
  if (it == frames.end()) throw std::runtime_error(d.source_path + ": cannot read frame " + std::to_string(d.frame) +
                                                   " of detection " + std::to_string(id) + " any more");
  q.image = it->second;
  q.detection_id = id;
  q.description = "gallery detection " + std::to_string(id) + " (" + d.camera + ", frame " + std::to_string(d.frame) + ")";
  return q;
}

nlohmann::json hits_json(const std::vector<SearchHit>& hits) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    const DetectionRecord& d = hits[i].detection;
    out.push_back({{"rank", i + 1},
                   {"id", d.id},
                   {"similarity", hits[i].similarity},
                   {"camera", d.camera},
                   {"source", d.source_path},
                   {"frame", d.frame},
                   {"time", d.time},
                   {"image", d.image},
                   {"box", {d.box[0], d.box[1], d.box[2], d.box[3]}},
                   {"score", d.score}});
  }
  return out;
}

}  // namespace psearch::gallery
