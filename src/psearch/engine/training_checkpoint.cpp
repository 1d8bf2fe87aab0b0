#include "psearch/engine/training_checkpoint.h"

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <ostream>
#include <stdexcept>

#include "psearch/util/atomic_file.h"
#include "psearch/util/file_status.h"
#include "psearch/util/strings.h"

namespace psearch::engine {
namespace {

constexpr const char* kFormat = "psearch-checkpoint/1";


/// Weight files of other programs are a common mix-up: name what the file is and where it goes.
void describe_if_not_an_archive(const std::string& path) {
  switch (checkpoint::file_kind(path)) {
    case checkpoint::FileKind::kLibTorchArchive: return;
    case checkpoint::FileKind::kTorchSave:
      throw std::runtime_error(path + ": a torch.save weight file (" +
                               std::to_string(checkpoint::load_tensors(path).size()) +
                               " tensors), not a psearch checkpoint; ImageNet ResNet weights go to "
                               "model.backbone.weights of a train config (or psearch backbone --weights), "
                               "official NAE4PS checkpoints through psearch import-nae4ps");
    case checkpoint::FileKind::kLegacyPickle:
      throw std::runtime_error(path + ": a legacy torch.save file (PyTorch < 1.6), not a psearch checkpoint");
    case checkpoint::FileKind::kOther:
      throw std::runtime_error(path + ": not a psearch checkpoint (not a LibTorch archive; empty, truncated or "
                                      "another format)");
  }
}

}  // namespace

checkpoint::TensorMap model_state(torch::nn::Module& model) {
  checkpoint::TensorMap state;
  for (const auto& item : model.named_parameters()) state[item.key()] = item.value().detach().cpu();
  for (const auto& item : model.named_buffers()) state[item.key()] = item.value().detach().cpu();
  return state;
}

void save_checkpoint(const std::string& path, const CheckpointContents& contents,
                     const torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("model_type", c10::IValue(contents.model_type));
  archive.write("config", c10::IValue(contents.config_yaml));
  archive.write("iteration", c10::IValue(contents.iteration));
  archive.write("num_pids", c10::IValue(contents.num_pids));
  c10::Dict<std::string, at::Tensor> state;
  for (const auto& [name, tensor] : contents.state) state.insert(name, tensor);
  archive.write("model", c10::IValue(state));
  if (contents.rng_state.defined()) archive.write("rng_state", contents.rng_state, /*is_buffer=*/true);
  if (contents.loss_scaler.defined()) archive.write("loss_scaler", contents.loss_scaler, /*is_buffer=*/true);
  if (optimizer) {
    torch::serialize::OutputArchive optim;
    optimizer->save(optim);
    archive.write("optimizer", optim);
  }
  util::write_file_atomically(path, [&](std::ostream& out) { archive.save_to(out); });
}

CheckpointContents load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) {
  if (!util::is_regular_file(path)) throw std::runtime_error(path + ": no such checkpoint file");
  describe_if_not_an_archive(path);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": not a psearch checkpoint (cannot read it as a LibTorch archive: " +
                             util::first_line(e.what_without_backtrace()) + ")");
  }
  CheckpointContents c;
  try {
    c10::IValue value;
    if (!archive.try_read("format", value) || !value.isString() || value.toStringRef() != kFormat)
      throw std::runtime_error(path + ": not a psearch training checkpoint (no \"" + kFormat + "\" format tag)");
    archive.read("model_type", value);
    c.model_type = value.toStringRef();
    archive.read("config", value);
    c.config_yaml = value.toStringRef();
    archive.read("iteration", value);
    c.iteration = value.toInt();
    archive.read("num_pids", value);
    c.num_pids = value.toInt();
    archive.read("model", value);
    for (const auto& entry : value.toGenericDict()) c.state[entry.key().toStringRef()] = entry.value().toTensor();
    at::Tensor rng;
    if (archive.try_read("rng_state", rng, /*is_buffer=*/true)) c.rng_state = rng;
    at::Tensor scaler;
    if (archive.try_read("loss_scaler", scaler, /*is_buffer=*/true)) c.loss_scaler = scaler;
    if (optimizer) {
      torch::serialize::InputArchive optim;
      if (!archive.try_read("optimizer", optim))
        throw std::runtime_error(path + ": holds no optimizer state, so training cannot resume from it");
      optimizer->load(optim);
    }
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": damaged psearch checkpoint (" + util::first_line(e.what_without_backtrace()) + ")");
  }
  return c;
}

}  // namespace psearch::engine
