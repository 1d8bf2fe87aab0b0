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

/// Loads every tensor of a torch.save file. Nested dicts are flattened by joining keys
/// with '.', so {"model": {"fc.weight": t}} gives "model.fc.weight". Tensors are
/// returned on the CPU. Non-tensor leaves (ints, strings, ...) are skipped.
/// Throws std::runtime_error naming the file on an unreadable, non-zip or corrupt file.
TensorMap load_tensors(const std::string& path);

}  // namespace psearch::checkpoint
