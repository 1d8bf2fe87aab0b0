#pragma once
/// Writing what Python's torch.save writes, for plain containers (dicts with string keys,
/// lists, strings, numbers, tensors), so that torch.load(path) (weights_only=True, the
/// default since PyTorch 2.6) reads it. torch::pickle_save would tag every container with
/// its TorchScript type (torch.jit._pickle.restore_type_tag), which weights_only refuses.
#include <ATen/core/ivalue.h>

#include <vector>

namespace psearch::checkpoint {

/// The bytes of a torch.save zip archive holding `value`. Tensors are written from CPU
/// copies of their own storage.
std::vector<char> torch_save_bytes(const c10::IValue& value);

}  // namespace psearch::checkpoint
