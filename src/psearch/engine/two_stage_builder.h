#pragma once
/// Building the two-stage models from configs and weight files: ImageNet backbones,
/// initialisation from another trained model (NAE -> NAE+), and trained checkpoints for
/// evaluation.
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "psearch/config/config.h"
#include "psearch/modeling/two_stage/two_stage_model.h"

namespace psearch::engine {

/// A model as the config describes it, randomly initialised (seed the generator first).
/// num_pids: OIM lookup-table rows when the config's model.oim.num_pids is 0.
modeling::TwoStageModel build_two_stage_model(const config::Config& config, int64_t num_pids);

/// Loads a torchvision ImageNet ResNet checkpoint (e.g. resnet50-0676ba61.pth) into the
/// trunk: conv1 .. layer3 into backbone.*, layer4 into roi_heads.head.*; fc.* is dropped.
/// Strict: every trunk tensor must be present with its shape. Throws std::runtime_error
/// naming the file.
void load_imagenet_backbone(modeling::TwoStageModelImpl& model, const std::string& path);

/// Initialises `model` from a psearch training checkpoint (config train.init_from): the same
/// model type loads as is; a NAE checkpoint initialises NAE+ with its FC projections turned
/// into 1x1 convs (NAE paper Sec. 4.2). Other combinations, and checkpoints whose tensors
/// do not fit, throw std::runtime_error naming the file.
void init_from_checkpoint(modeling::TwoStageModelImpl& model, const std::string& path);

/// A trained model and the config it was trained with.
struct TrainedModel {
  modeling::TwoStageModel model{nullptr};
  config::Config config;
  int64_t iteration = 0;
};

/// Loads a checkpoint for inference: rebuilds the model from the config it carries (with
/// `overrides`, e.g. "inference.nms_thresh=0.5", applied), loads its state strictly, moves
/// it to `device` and sets eval mode. `expected_type`, when not empty, must equal the
/// checkpoint's model type. Throws std::runtime_error with one line naming the file.
TrainedModel load_trained_model(const std::string& path, c10::Device device,
                                const std::vector<std::string>& overrides = {},
                                const std::string& expected_type = "");

}  // namespace psearch::engine
