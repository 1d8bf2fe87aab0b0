#pragma once
/// Building person-search models of any registered type from configs and checkpoints:
/// fresh models for training, initialisation from another trained model (NAE -> NAE+),
/// and trained checkpoints for evaluation and indexing.
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "psearch/config/config.h"
#include "psearch/modeling/person_search_model.h"

namespace psearch::engine {

/// A model of the config's model.type, randomly initialised (seed the generator first).
/// num_pids: OIM lookup-table rows when the config's model.oim.num_pids is 0. Throws
/// std::runtime_error (one line) when the model cannot be built, e.g. no identity.
modeling::PersonSearchModel build_model(const config::Config& config, int64_t num_pids);

/// Initialises `model` from a psearch training checkpoint (config train.init_from), through
/// the model's init_from (same type, or a conversion the family offers). Throws
/// std::runtime_error naming the file when it is no checkpoint, holds a type the model
/// cannot start from, or its tensors do not fit.
void init_from_checkpoint(modeling::PersonSearchModelImpl& model, const std::string& path);

/// Makes a built or loaded model ready to run: moves it to `device`, sets eval mode,
/// stores its weights in config inference.memory_format and, on a GPU, turns on cuDNN
/// autotuning (for the process).
void prepare_for_inference(modeling::PersonSearchModelImpl& model, const config::Config& config, c10::Device device);

/// A trained model and the config it was trained with.
struct TrainedModel {
  modeling::PersonSearchModel model;
  config::Config config;
  int64_t iteration = 0;
};

/// Loads a checkpoint for inference: rebuilds the model from the config it carries
/// (migrated when it predates the current layout, then `overrides` applied, e.g.
/// "inference.nms_thresh=0.5"), loads its state strictly and prepares it for inference.
/// `expected_type`, when not empty, must equal the checkpoint's model type.
/// Throws std::runtime_error with one line naming the file.
TrainedModel load_trained_model(const std::string& path, c10::Device device,
                                const std::vector<std::string>& overrides = {},
                                const std::string& expected_type = "");

}  // namespace psearch::engine
