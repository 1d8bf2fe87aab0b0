#include "psearch/gallery/gallery_model.h"

#include <filesystem>
#include <stdexcept>

#include "psearch/config/config.h"
#include "psearch/engine/model_builder.h"
#include "psearch/modeling/person_search_model.h"
#include "psearch/modeling/pretrained_weights.h"
#include "psearch/util/sha256.h"

namespace psearch::gallery {
namespace {

std::string absolute(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

/// Identity of a model built from weight files: the settings that shape its embeddings
/// and the files' contents. Only model and inference keys that differ from their defaults
/// count, so that new keys elsewhere (train.precision was one) or new keys whose default
/// keeps the old behaviour do not orphan existing galleries.
std::string pretrained_hash(const config::Config& config) {
  const auto& s = config.model.separate;
  const std::string detector =
      s.detector_weights.empty() ? modeling::pretrained_weights_path(modeling::kSSDLitePerson) : s.detector_weights;
  const std::string embedder = s.embedder_weights.empty()
                                   ? modeling::pretrained_weights_path(modeling::kMobileNetV2ImageNet)
                                   : s.embedder_weights;
  // Weight paths do not matter, their contents do.
  config::Config canonical;
  canonical.model = config.model;
  canonical.inference = config.inference;
  canonical.model.separate.detector_weights.clear();
  canonical.model.separate.embedder_weights.clear();
  std::string settings = "psearch pretrained identity 2\n";
  for (const std::string& change : config::differing_keys(canonical, config::Config{})) settings += change + "\n";
  return util::sha256_text(settings + util::sha256_file(detector) + util::sha256_file(embedder));
}

}  // namespace

GalleryModel load_gallery_model(const std::string& checkpoint, const std::string& type,
                                const std::vector<std::string>& overrides, c10::Device device) {
  GalleryModel out;
  config::Config config;
  modeling::PersonSearchModel model{nullptr};
  if (!checkpoint.empty()) {
    engine::TrainedModel trained = engine::load_trained_model(checkpoint, device, overrides);
    model = trained.model;
    config = trained.config;
    out.identity.source = absolute(checkpoint);
    out.identity.sha256 = util::sha256_file(checkpoint);
  } else {
    if (!modeling::model_type(type).loss_names.empty())
      throw std::runtime_error("model type '" + type + "' must be trained first: give its --checkpoint");
    config = config::parse_config("model:\n  type: " + type + "\n", "--model " + type, overrides);
    model = engine::build_model(config, 0);
    engine::prepare_for_inference(*model, config, device);
    out.identity.source = "pretrained";
    out.identity.sha256 = pretrained_hash(config);
  }
  out.identity.type = model->type();
  out.identity.embedding_dim = model->embedding_dim();
  out.identity.overrides = overrides;
  out.det_thresh = config.inference.det_thresh;
  out.batch_size = config.inference.batch_size;
  out.model = std::make_unique<modeling::PersonSearchAdapter>(model);
  out.network = model;
  return out;
}

GalleryModel load_recorded_model(const ModelIdentity& recorded, const std::string& checkpoint, c10::Device device) {
  const bool pretrained = recorded.source == "pretrained";
  if (pretrained && !checkpoint.empty())
    throw std::runtime_error("the gallery was built with the pretrained " + recorded.type +
                             " model, not a checkpoint: leave out --checkpoint");
  const std::string file = checkpoint.empty() ? recorded.source : checkpoint;
  if (!pretrained && !std::filesystem::exists(file))
    throw std::runtime_error(file + ": the gallery's checkpoint is gone; give its new place with --checkpoint");
  GalleryModel out = load_gallery_model(pretrained ? "" : file, recorded.type, recorded.overrides, device);
  if (out.identity.sha256 != recorded.sha256 || out.identity.type != recorded.type)
    throw std::runtime_error((pretrained ? std::string("the pretrained weight files") : file) + " (" + out.identity.type +
                             ", sha256 " + out.identity.sha256.substr(0, 12) + ") is not the model the gallery was built with (" +
                             recorded.type + ", sha256 " + recorded.sha256.substr(0, 12) +
                             "); index into a new gallery file" +
                             (pretrained ? " (galleries of psearch before 2026-12-07 recorded a hash of every config key)" : ""));
  return out;
}

}  // namespace psearch::gallery
