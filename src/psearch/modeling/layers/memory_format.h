#pragma once
/// The memory layout of a model's convolution weights. With channels-last (NHWC) weights,
/// ATen's convolutions (oneDNN on the CPU, cuDNN on the GPU) return channels-last outputs,
/// so the layout then runs through the whole network from the first conv on; NCHW inputs
/// need no conversion. The ops (roi_align, deform_conv2d) take either layout (they make
/// their inputs contiguous). Measured in docs/benchmarks.md ("Memory layout").
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace psearch::modeling {

/// The layout names: "contiguous" (NCHW, torch's default) and "channels_last" (NHWC).
const std::vector<std::string>& memory_format_names();

/// A name of memory_format_names() -> the format; throws std::runtime_error otherwise.
at::MemoryFormat memory_format_from_name(const std::string& name);

/// Stores every 4-D parameter and buffer of `module` (recursively) in `format`, in place
/// (the tensors keep their identity, so optimisers and traced graphs still see them).
void set_memory_format(torch::nn::Module& module, at::MemoryFormat format);

}  // namespace psearch::modeling
