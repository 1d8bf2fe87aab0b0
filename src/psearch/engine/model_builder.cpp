#include "psearch/engine/model_builder.h"

#include <ATen/Context.h>

#include <stdexcept>

#include "psearch/checkpoint/state_dict.h"
#include "psearch/engine/training_checkpoint.h"
#include "psearch/modeling/layers/memory_format.h"

namespace psearch::engine {

modeling::PersonSearchModel build_model(const config::Config& config, int64_t num_pids) {
  try {
    return modeling::model_type(config.model.type).build(config, num_pids);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("cannot build a '") + config.model.type + "' model: " + e.what());
  }
}

void init_from_checkpoint(modeling::PersonSearchModelImpl& model, const std::string& path) {
  CheckpointContents source = load_checkpoint(path);
  model.init_from(source.model_type, std::move(source.state), path);
}

void prepare_for_inference(modeling::PersonSearchModelImpl& model, const config::Config& config, c10::Device device) {
  model.to(device);
  model.eval();
  // cuDNN autotuning: the first call of each input shape times the convolution
  // algorithms and keeps the fastest. Inference streams (a video's frames, a dataset
  // resized to one size) repeat a few shapes, so this pays back after a frame or two.
  // Training with its many aspect ratios is left alone.
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  modeling::set_memory_format(model, modeling::memory_format_from_name(config.inference.memory_format));
}

TrainedModel load_trained_model(const std::string& path, c10::Device device,
                                const std::vector<std::string>& overrides, const std::string& expected_type) {
  CheckpointContents contents = load_checkpoint(path);
  if (!expected_type.empty() && contents.model_type != expected_type)
    throw std::runtime_error(path + ": holds a '" + contents.model_type + "' model, not '" + expected_type + "'");
  TrainedModel out;
  out.config = config::parse_config(contents.config_yaml, path + " (embedded config)", overrides);
  out.iteration = contents.iteration;
  out.model = build_model(out.config, contents.num_pids);
  checkpoint::load_state_dict(*out.model, contents.state, checkpoint::Strictness::kStrict, path);
  prepare_for_inference(*out.model, out.config, device);
  return out;
}

}  // namespace psearch::engine
