#include "psearch/gallery/query.h"

#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/argsort.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/tensor.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "psearch/boxes/box_ops.h"
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

namespace {

constexpr double kContextOverlap = 0.4;  // people overlapping the query box more are the query person

/// [1, D] query embedding + the embeddings of `others` (boxes [N, 4], scores [N], features
/// [N, D]) that do not overlap the query box, most confident first.
at::Tensor context_of(const at::Tensor& query, const float box[4], const at::Tensor& boxes, const at::Tensor& scores,
                      const at::Tensor& features) {
  if (boxes.size(0) == 0) return query.reshape({1, -1});
  const at::Tensor query_box = at::tensor({box[0], box[1], box[2], box[3]}, at::kFloat).reshape({1, 4});
  const at::Tensor keep = boxes::box_iou(boxes.to(at::kFloat), query_box).reshape({-1}) <= kContextOverlap;
  const at::Tensor kept_scores = scores.index({keep}), kept = features.index({keep});
  const at::Tensor order = at::argsort(kept_scores, /*stable=*/true, /*dim=*/0, /*descending=*/true);
  return at::cat({query.reshape({1, -1}), kept.index_select(0, order).to(at::kFloat)});
}

}  // namespace

Query query_from_image(const at::Tensor& image, std::vector<double> box, GalleryModel& model,
                       const std::string& description, bool with_context) {
  Query q;
  for (int k = 0; k < 4; ++k) q.box[k] = static_cast<float>(box.at(k));
  check_query_box(q.box, image.size(2), image.size(1), description);
  const at::Tensor boxes = at::tensor({q.box[0], q.box[1], q.box[2], q.box[3]}, at::kFloat).reshape({1, 4});
  q.embedding = model.model->embed(image, boxes)[0].contiguous();
  q.image = image;
  if (with_context) {
    const modeling::Detections people = model.model->detect(image);
    const at::Tensor confident = people.scores >= model.det_thresh;
    q.context = context_of(q.embedding, q.box, people.boxes.index({confident}), people.scores.index({confident}),
                           people.features.index({confident}));
  }
  std::ostringstream text;
  text << description << " box [" << q.box[0] << ", " << q.box[1] << ", " << q.box[2] << ", " << q.box[3] << "]";
  q.description = text.str();
  return q;
}

Query query_from_image(const std::string& image_path, const std::vector<double>& box, const ModelIdentity& recorded,
                       const std::string& checkpoint, c10::Device device, bool with_context) {
  const at::Tensor image = data::read_image(image_path);
  std::vector<float> checked(box.begin(), box.end());
  check_query_box(checked.data(), image.size(2), image.size(1), image_path);  // before loading the model
  GalleryModel model = load_recorded_model(recorded, checkpoint, device);
  return query_from_image(image, box, model, image_path, with_context);
}

Query query_from_detection(const GalleryStore& store, int64_t id, bool with_context) {
  Query q;
  q.embedding = store.embeddings_of({id})[0];
  const DetectionRecord d = store.detections({id}).at(0);
  std::copy(d.box, d.box + 4, q.box);
  const auto frames = read_frames({d});
  const auto it = frames.find({d.source_id, d.frame});
  if (it == frames.end()) throw std::runtime_error(d.source_path + ": cannot read frame " + std::to_string(d.frame) +
                                                   " of detection " + std::to_string(id) + " any more");
  q.image = it->second;
  q.detection_id = id;
  if (with_context) {
    std::vector<int64_t> ids;
    std::vector<float> boxes, scores;
    for (const auto& p : store.frame_detections(d.source_id, d.frame)) {
      if (p.id == id) continue;
      ids.push_back(p.id);
      boxes.insert(boxes.end(), p.box, p.box + 4);
      scores.push_back(p.score);
    }
    const auto n = static_cast<int64_t>(ids.size());
    q.context = context_of(q.embedding, q.box, at::tensor(boxes, at::kFloat).reshape({n, 4}),
                           at::tensor(scores, at::kFloat), store.embeddings_of(ids));
  }
  q.description = "gallery detection " + std::to_string(id) + " (" + d.camera + ", frame " + std::to_string(d.frame) + ")";
  return q;
}

Query query_from_frame(const GalleryStore& store, const std::string& camera, int64_t frame, int64_t rank,
                       bool with_context) {
  std::string cameras;
  for (const auto& source : store.sources()) {
    if (source.camera != camera) {
      cameras += (cameras.empty() ? "" : ", ") + source.camera;
      continue;
    }
    const auto people = store.frame_detections(source.id, frame);  // most confident first
    if (rank >= static_cast<int64_t>(people.size()))
      throw std::runtime_error(store.path() + ": camera " + camera + " frame " + std::to_string(frame) + " holds " +
                               std::to_string(people.size()) + " stored people, no person number " +
                               std::to_string(rank) + " (indexed frames are multiples of the stride " +
                               std::to_string(source.stride) + ")");
    return query_from_detection(store, people[rank].id, with_context);
  }
  throw std::runtime_error(store.path() + ": no camera '" + camera + "' (cameras: " + cameras + ")");
}

/// Pixel coordinates to 0.01 px: the JSON stays short, no detector is that precise.
double round2(float v) { return std::round(static_cast<double>(v) * 100.0) / 100.0; }

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
                   {"box", {round2(d.box[0]), round2(d.box[1]), round2(d.box[2]), round2(d.box[3])}},
                   {"score", d.score}});
  }
  return out;
}

}  // namespace psearch::gallery
