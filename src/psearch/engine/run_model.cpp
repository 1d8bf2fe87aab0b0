#include "psearch/engine/run_model.h"

#include <ATen/ops/argsort.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>

#include "psearch/boxes/box_ops.h"
#include "psearch/data/image_io.h"
#include "psearch/distributed/collectives.h"
#include "psearch/util/progress.h"

namespace psearch::engine {
namespace {

at::Tensor boxes_tensor(const std::vector<data::Box>& boxes) {
  std::vector<float> flat;
  for (const auto& b : boxes) flat.insert(flat.end(), b.begin(), b.end());
  return at::tensor(flat).view({static_cast<int64_t>(boxes.size()), 4});
}

/// CBGM context of one query: its box and embedding, then the image's other gallery
/// entries by decreasing score.
evaluation::QueryContext query_context(const data::Box& box, const at::Tensor& feature,
                                       const modeling::Detections& image, double overlap) {
  const at::Tensor query_box = boxes_tensor({box});
  std::vector<at::Tensor> boxes{query_box}, features{feature.unsqueeze(0)};
  if (image.boxes.size(0) > 0) {
    const at::Tensor order = at::argsort(image.scores, /*stable=*/true, /*dim=*/0, /*descending=*/true);
    const at::Tensor sorted = image.boxes.index_select(0, order);
    const at::Tensor keep = boxes::box_iou(query_box, sorted)[0].le(overlap).nonzero().view({-1});
    boxes.push_back(sorted.index_select(0, keep));
    features.push_back(image.features.index_select(0, order).index_select(0, keep));
  }
  return {at::cat(boxes), at::cat(features)};
}

/// Rows of per-item tensors ([n_i, ...] for item i, undefined or empty where this rank has
/// nothing) gathered over the job, then split back per item, in item order.
class ItemRows {
 public:
  explicit ItemRows(size_t items) : items_(items) {}
  void add(size_t item, const at::Tensor& rows) {
    if (!rows.defined() || rows.size(0) == 0) return;
    parts_.push_back(rows.to(at::kFloat).cpu().flatten(1));  // sharded evaluation talks over Gloo (CPU)
    owners_.push_back(at::full({rows.size(0)}, static_cast<int64_t>(item), at::kLong));
  }
  /// Every rank's rows of each item, reshaped to [n_i, trailing...]; items without rows get
  /// [0, trailing...].
  std::vector<at::Tensor> gather(const std::vector<int64_t>& trailing) const {
    int64_t width = 1;
    for (int64_t t : trailing) width *= t;
    const at::Tensor mine = parts_.empty() ? at::zeros({0, width}) : at::cat(parts_);
    const at::Tensor owner = owners_.empty() ? at::zeros({0}, at::kLong) : at::cat(owners_);
    const at::Tensor rows = distributed::all_gather_rows(mine);
    const at::Tensor owners = distributed::all_gather_rows(owner.view({-1, 1})).view({-1});
    // Stable: the rows of one item come from one rank, in the order it produced them.
    const at::Tensor order = at::argsort(owners, /*stable=*/true);
    const at::Tensor counts = at::bincount(owners, {}, static_cast<int64_t>(items_));
    std::vector<int64_t> shape{-1};
    shape.insert(shape.end(), trailing.begin(), trailing.end());
    std::vector<at::Tensor> out = rows.index_select(0, order).split_with_sizes(
        c10::IntArrayRef(counts.data_ptr<int64_t>(), static_cast<size_t>(counts.numel())));
    for (auto& t : out) t = t.reshape(shape);
    return out;
  }

 private:
  size_t items_;
  std::vector<at::Tensor> parts_, owners_;
};

/// The embedding dimension the job's ranks saw (0 when none embedded anything).
int64_t job_dimension(int64_t mine) {
  const at::Tensor all = distributed::all_gather_rows(at::tensor(std::vector<int64_t>{mine}));
  return all.max().item<int64_t>();
}

/// Replaces this rank's share of `inputs` by the whole job's.
void merge_shards(evaluation::SearchInputs& inputs, std::vector<at::Tensor>& query_features, size_t num_images) {
  int64_t dim = 0;
  for (const auto& f : query_features)
    if (f.defined()) dim = f.size(0);
  for (const auto& g : inputs.gallery)
    if (g.features.defined() && g.features.dim() == 2) dim = g.features.size(1);
  dim = job_dimension(dim);
  ItemRows boxes(num_images), scores(num_images), features(num_images);
  for (size_t i = 0; i < num_images; ++i) {
    boxes.add(i, inputs.gallery[i].boxes);
    scores.add(i, inputs.gallery[i].scores.defined() ? inputs.gallery[i].scores.view({-1, 1}) : at::Tensor());
    features.add(i, inputs.gallery[i].features);
  }
  const auto all_boxes = boxes.gather({4}), all_scores = scores.gather({}), all_features = features.gather({dim});
  for (size_t i = 0; i < num_images; ++i) inputs.gallery[i] = {all_boxes[i], all_scores[i], all_features[i]};

  ItemRows queries(query_features.size());
  for (size_t q = 0; q < query_features.size(); ++q)
    if (query_features[q].defined()) queries.add(q, query_features[q].view({1, -1}));
  const auto all_queries = queries.gather({dim});
  for (size_t q = 0; q < query_features.size(); ++q) query_features[q] = all_queries[q].view({-1});

  if (inputs.query_context.empty()) return;
  ItemRows context_boxes(query_features.size()), context_features(query_features.size());
  for (size_t q = 0; q < query_features.size(); ++q) {
    context_boxes.add(q, inputs.query_context[q].boxes);
    context_features.add(q, inputs.query_context[q].features);
  }
  const auto all_context_boxes = context_boxes.gather({4}), all_context_features = context_features.gather({dim});
  for (size_t q = 0; q < query_features.size(); ++q)
    inputs.query_context[q] = {all_context_boxes[q], all_context_features[q]};
}

}  // namespace

evaluation::SearchInputs run_search_model(modeling::SearchModel& model, const data::SearchSplit& split,
                                          const RunOptions& options) {
  if (!options.ground_truth_boxes && !model.has_detector())
    throw std::runtime_error(model.name() + " has no detector: run it with ground-truth boxes");
  if (options.batch_size < 1) throw std::invalid_argument("run_search_model: batch_size must be >= 1");
  // Queries grouped by image, so every image is decoded once for both paths.
  std::map<int32_t, std::vector<size_t>> queries_of_image;
  for (size_t q = 0; q < split.queries.size(); ++q) queries_of_image[split.queries[q].image].push_back(q);

  evaluation::SearchInputs inputs;
  inputs.gallery.resize(split.images.size());
  std::vector<at::Tensor> query_features(split.queries.size());
  if (options.query_context) inputs.query_context.resize(split.queries.size());
  std::unique_ptr<util::ProgressBar> bar;
  if (options.progress) bar = std::make_unique<util::ProgressBar>(model.name(), split.images.size(), "img");
  const size_t batch = static_cast<size_t>(options.batch_size);
  for (size_t first = 0; first < split.images.size(); first += batch) {
    const size_t end = std::min(split.images.size(), first + batch);
    if (static_cast<int>((first / batch) % static_cast<size_t>(options.shards)) != options.shard) {
      if (bar) bar->advance(end - first);
      continue;
    }
    std::vector<at::Tensor> images;
    for (size_t i = first; i < end; ++i) images.push_back(data::read_image(split.images[i].path));
    if (!options.ground_truth_boxes) {
      std::vector<modeling::Detections> detections = model.detect_batch(images);
      for (size_t i = first; i < end; ++i) inputs.gallery[i] = std::move(detections[i - first]);
    }
    for (size_t i = first; i < end; ++i) {
      const at::Tensor& image = images[i - first];
      // One embed call per image: the annotated boxes (ground-truth mode) first, then the
      // queries on this image, so the backbone runs once per image for the query path.
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
        modeling::Detections& gallery = inputs.gallery[i];
        gallery.boxes = boxes_tensor({boxes.begin(), boxes.begin() + num_gallery});
        gallery.scores = at::ones({num_gallery});
        gallery.features = features.slice(0, 0, num_gallery);
      }
      if (queries == queries_of_image.end()) continue;
      for (size_t k = 0; k < queries->second.size(); ++k) {
        const size_t q = queries->second[k];
        query_features[q] = features[num_gallery + static_cast<int64_t>(k)];
        if (options.query_context)
          inputs.query_context[q] =
              query_context(split.queries[q].box, query_features[q], inputs.gallery[i], options.context_overlap);
      }
    }
    if (bar) bar->advance(end - first);
  }
  if (bar) bar->finish();
  if (options.shards > 1) merge_shards(inputs, query_features, split.images.size());
  inputs.query_features = split.queries.empty() ? at::Tensor() : at::stack(query_features);
  return inputs;
}

}  // namespace psearch::engine
