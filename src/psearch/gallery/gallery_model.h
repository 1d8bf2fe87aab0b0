#pragma once
/// The model a gallery is indexed and searched with: a trained checkpoint of any
/// registered type, or a model built from pretrained weight files only ("separate"),
/// together with the identity (type, file, sha256, dimension) the gallery records.
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "psearch/gallery/gallery_store.h"
#include "psearch/modeling/person_search_model.h"
#include "psearch/modeling/search_model.h"

namespace psearch::gallery {

struct GalleryModel {
  std::unique_ptr<modeling::SearchModel> model;  ///< `network` behind the search interface
  modeling::PersonSearchModel network{nullptr};
  ModelIdentity identity;
  double det_thresh = 0.5;  ///< the model's inference.det_thresh: detections kept in the gallery
  int64_t batch_size = 1;   ///< its inference.batch_size: frames per forward pass
};

/// From a checkpoint (when `checkpoint` is not empty) or a model type that needs no
/// training (`type`, e.g. "separate"), with --set `overrides`. Throws std::runtime_error
/// (one line, naming the file) when it cannot be built.
GalleryModel load_gallery_model(const std::string& checkpoint, const std::string& type,
                                const std::vector<std::string>& overrides, c10::Device device);

/// The model that built a gallery (`recorded`), for embedding queries: the recorded
/// checkpoint, or `checkpoint` when given (the file moved). Throws a one-line error when
/// the file's hash differs from the recorded one.
GalleryModel load_recorded_model(const ModelIdentity& recorded, const std::string& checkpoint, c10::Device device);

}  // namespace psearch::gallery
