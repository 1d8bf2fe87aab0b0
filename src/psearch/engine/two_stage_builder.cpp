#include "psearch/engine/two_stage_builder.h"

#include <stdexcept>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/engine/training_checkpoint.h"
#include "psearch/util/strings.h"

namespace psearch::engine {
namespace {

namespace ms = psearch::modeling;

/// Loads `state` into `model` strictly, with the file named in the error.
void load_strict(ms::TwoStageModelImpl& model, const checkpoint::TensorMap& state, const std::string& path) {
  checkpoint::load_state_dict(model, state, checkpoint::Strictness::kStrict, path);
}

}  // namespace

ms::TwoStageModel build_two_stage_model(const config::Config& config, int64_t num_pids) {
  return ms::TwoStageModel(ms::two_stage_options_from_config(config, num_pids));
}

void load_imagenet_backbone(ms::TwoStageModelImpl& model, const std::string& path) {
  // Load into a whole ResNet first: that checks the file against torchvision's layout.
  ms::ResNetOptions options = model.options().backbone;
  ms::ResNet full(options.last_stage("C5"));
  ms::load_torchvision_resnet(*full, path, checkpoint::Strictness::kStrict);
  checkpoint::TensorMap trunk;
  for (const auto& [name, tensor] : model_state(*full)) {
    const std::string target = util::starts_with(name, "layer4.") ? "roi_heads.head." + name.substr(7) : "backbone." + name;
    trunk[target] = tensor;
  }
  const checkpoint::LoadReport report =
      checkpoint::load_state_dict(model, trunk, checkpoint::Strictness::kNonStrict, path);
  if (!report.unexpected.empty() || !report.mismatched.empty())
    throw std::runtime_error(path + ": ImageNet weights do not fit the detector trunk" + report.describe());
}

void init_from_checkpoint(ms::TwoStageModelImpl& model, const std::string& path) {
  CheckpointContents source = load_checkpoint(path);
  const std::string target = ms::two_stage_head_name(model.options().head);
  if (source.model_type == target) {
    load_strict(model, source.state, path);
    return;
  }
  if (source.model_type == "nae" && target == "nae_plus") {
    ms::embedding_state_to_pixel_wise(source.state, "embedding_head.");
    load_strict(model, source.state, path);
    return;
  }
  throw std::runtime_error(path + ": holds a '" + source.model_type + "' model; a '" + target +
                           "' model can start from '" + target + "'" + (target == "nae_plus" ? " or 'nae'" : "") +
                           " checkpoints only");
}

TrainedModel load_trained_model(const std::string& path, c10::Device device,
                                const std::vector<std::string>& overrides, const std::string& expected_type) {
  CheckpointContents contents = load_checkpoint(path);
  if (!expected_type.empty() && contents.model_type != expected_type)
    throw std::runtime_error(path + ": holds a '" + contents.model_type + "' model, not '" + expected_type + "'");
  TrainedModel out;
  out.config = config::parse_config(contents.config_yaml, path + " (embedded config)", overrides);
  out.iteration = contents.iteration;
  out.model = build_two_stage_model(out.config, contents.num_pids);
  load_strict(*out.model, contents.state, path);
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace psearch::engine
