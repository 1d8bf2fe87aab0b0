#pragma once
/// Training checkpoints of the two-stage models ("psearch-checkpoint/1"): everything needed
/// to resume exactly or to evaluate. Written with LibTorch's archive format (a zip file),
/// atomically (a temporary file renamed over the old one), so an interrupted run always
/// leaves the previous checkpoint intact. docs/training.md describes the contents.
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>

#include "psearch/checkpoint/torch_file.h"

namespace psearch::engine {

/// What a checkpoint holds besides the optimizer.
struct CheckpointContents {
  std::string model_type;      ///< config model.type: "oim", "nae" or "nae_plus"
  std::string config_yaml;     ///< the complete config (config::to_yaml), for eval and resume
  int64_t iteration = 0;       ///< iterations completed
  int64_t num_pids = 0;        ///< OIM lookup-table rows the model was built with
  checkpoint::TensorMap state; ///< model parameters and buffers by name (OIM memory included)
  at::Tensor rng_state;        ///< default CPU generator state (RoI / anchor sampling)
  at::Tensor loss_scaler;      ///< train.precision fp16: LossScaler::state(); else undefined
};

/// The model's parameters and buffers by state_dict name (detached tensors on the CPU).
checkpoint::TensorMap model_state(torch::nn::Module& model);

/// Writes `contents` (its state as given) and, when not null, the optimizer state to
/// `path`, atomically. Throws std::runtime_error naming the path.
void save_checkpoint(const std::string& path, const CheckpointContents& contents,
                     const torch::optim::Optimizer* optimizer);

/// Reads a checkpoint written by save_checkpoint; loads the optimizer state into
/// `optimizer` when not null (it must have the same parameter groups). Throws
/// std::runtime_error with one line naming the path when the file is missing, is not a
/// psearch checkpoint (e.g. a torchvision weight file) or is damaged.
CheckpointContents load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer = nullptr);

}  // namespace psearch::engine
