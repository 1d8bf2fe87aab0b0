#pragma once
/// Queries of a gallery search: a box in an image embedded by the gallery's own model,
/// or a stored detection; and hits as JSON (what `psearch search` prints and the HTTP API
/// returns).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/searcher.h"

namespace psearch::gallery {

struct Query {
  at::Tensor embedding;  ///< [D] unit norm
  at::Tensor image;      ///< [3, H, W] RGB in [0, 1], for the report
  float box[4] = {0, 0, 0, 0};
  std::string description;
  std::optional<int64_t> detection_id;  ///< set when the query is a stored detection
  /// For CBGM (filled when asked for): [R, D], the query embedding, then the other people
  /// of the query image (score >= the model's det_thresh, IoU <= 0.4 with the query box),
  /// most confident first.
  at::Tensor context;
};

/// Checks a query box against an image of width x height: a box that lies partly outside
/// is clipped to the image; one that is empty or wholly outside is refused (one line
/// naming `what`, e.g. the image path).
void check_query_box(float box[4], int64_t width, int64_t height, const std::string& what);

/// Embeds `box` (x1, y1, x2, y2) of `image` [3, H, W] with `model`.
Query query_from_image(const at::Tensor& image, std::vector<double> box, GalleryModel& model,
                       const std::string& description, bool with_context = false);
/// Reads the image, loads the gallery's model (recorded; `checkpoint` when it moved) and embeds the box.
Query query_from_image(const std::string& image_path, const std::vector<double>& box, const ModelIdentity& recorded,
                       const std::string& checkpoint, c10::Device device, bool with_context = false);
/// The stored detection `id` (its embedding, frame and box); its context: the other stored
/// people of its frame.
Query query_from_detection(const GalleryStore& store, int64_t id, bool with_context = false);

/// The `rank`-th most confident stored person (0: the most) in frame `frame` of the source
/// of `camera` (the first such source); throws a one-line error naming what is missing.
Query query_from_frame(const GalleryStore& store, const std::string& camera, int64_t frame, int64_t rank,
                       bool with_context = false);

/// One JSON object per hit: rank, id, similarity, camera, source, frame, time, image, box, score.
nlohmann::json hits_json(const std::vector<SearchHit>& hits);

}  // namespace psearch::gallery
