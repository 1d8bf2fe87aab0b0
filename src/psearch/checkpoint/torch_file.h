#pragma once
/// Reading files written by Python's `torch.save` (zip format, PyTorch >= 1.6) in C++,
/// with no Python at run time.
///
/// LibTorch's own `torch::pickle_load` cannot read a `state_dict()` file: it turns the
/// `collections.OrderedDict` of every state_dict into None (pytorch issue #100741, still
/// so in 2.11). This reader interprets the small subset of the pickle protocol that
/// torch.save emits for checkpoints: dicts (plain and ordered), lists, tuples, strings,
/// numbers, booleans, None and tensors.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace psearch::checkpoint {

/// Flat map from dotted key ("layer1.0.conv1.weight") to tensor, ordered by key.
using TensorMap = std::map<std::string, at::Tensor>;

/// What a file that ends in .pt/.pth actually is, told from its container without parsing it.
enum class FileKind {
  kTorchSave,        ///< Python's torch.save (zip): a state_dict or a dict holding one
  kLibTorchArchive,  ///< LibTorch's serialize::OutputArchive (a TorchScript zip), e.g. a psearch training checkpoint
  kLegacyPickle,     ///< torch.save of PyTorch < 1.6
  kOther,            ///< empty, truncated or not a checkpoint at all
};

/// Sniffs `path`. Throws std::runtime_error naming the file when it cannot be opened.
FileKind file_kind(const std::string& path);

/// Loads every tensor of a torch.save file. Nested dicts are flattened by joining keys
/// with '.', so {"model": {"fc.weight": t}} gives "model.fc.weight". Tensors are
/// returned on the CPU. Non-tensor leaves (ints, strings, ...) are skipped.
/// Throws std::runtime_error naming the file on an unreadable, non-zip or corrupt file, and
/// on a LibTorch archive (a psearch checkpoint), saying which commands take that instead.
TensorMap load_tensors(const std::string& path);

}  // namespace psearch::checkpoint
