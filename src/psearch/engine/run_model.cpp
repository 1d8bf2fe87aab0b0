#include "psearch/engine/run_model.h"

#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>

#include <map>
#include <memory>

#include "psearch/data/image_io.h"
#include "psearch/util/progress.h"

namespace psearch::engine {
namespace {

at::Tensor boxes_tensor(const std::vector<data::Box>& boxes) {
  std::vector<float> flat;
  for (const auto& b : boxes) flat.insert(flat.end(), b.begin(), b.end());
  return at::tensor(flat).view({static_cast<int64_t>(boxes.size()), 4});
}

evaluation::ImageDetections detect(modeling::SearchModel& model, const at::Tensor& image) {
  modeling::Detections d = model.detect(image);
  return {d.boxes, d.scores, d.features};
}

}  // namespace

evaluation::SearchInputs run_search_model(modeling::SearchModel& model, const data::SearchSplit& split,
                                          const RunOptions& options) {
  if (!options.ground_truth_boxes && !model.has_detector())
    throw std::runtime_error(model.name() + " has no detector: run it with ground-truth boxes");
  // Queries grouped by image, so every image is decoded once for both paths.
  std::map<int32_t, std::vector<size_t>> queries_of_image;
  for (size_t q = 0; q < split.queries.size(); ++q) queries_of_image[split.queries[q].image].push_back(q);

  evaluation::SearchInputs inputs;
  inputs.gallery.resize(split.images.size());
  std::vector<at::Tensor> query_features(split.queries.size());
  std::unique_ptr<util::ProgressBar> bar;
  if (options.progress) bar = std::make_unique<util::ProgressBar>(model.name(), split.images.size(), "img");
  for (size_t i = 0; i < split.images.size(); ++i) {
    const at::Tensor image = data::read_image(split.images[i].path);
    // One embed call per image: the annotated boxes (ground-truth mode) first, then the
    // queries on this image, so the backbone runs once per image, not once per path.
    std::vector<data::Box> boxes;
    if (options.ground_truth_boxes)
      for (const auto& person : split.images[i].persons) boxes.push_back(person.box);
    const int64_t num_gallery = static_cast<int64_t>(boxes.size());
    auto queries = queries_of_image.find(static_cast<int32_t>(i));
    if (queries != queries_of_image.end())
      for (size_t q : queries->second) boxes.push_back(split.queries[q].box);
    at::Tensor features;
    if (options.ground_truth_boxes || !boxes.empty()) features = model.embed(image, boxes_tensor(boxes));

    if (options.ground_truth_boxes) {
      evaluation::ImageDetections& gallery = inputs.gallery[i];
      gallery.boxes = boxes_tensor({boxes.begin(), boxes.begin() + num_gallery});
      gallery.scores = at::ones({num_gallery});
      gallery.features = features.slice(0, 0, num_gallery);
    } else {
      inputs.gallery[i] = detect(model, image);
    }
    if (queries != queries_of_image.end())
      for (size_t k = 0; k < queries->second.size(); ++k)
        query_features[queries->second[k]] = features[num_gallery + static_cast<int64_t>(k)];
    if (bar) bar->advance();
  }
  if (bar) bar->finish();
  inputs.query_features = split.queries.empty() ? at::Tensor() : at::stack(query_features);
  return inputs;
}

}  // namespace psearch::engine
