#include "psearch/modeling/layers/memory_format.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>

namespace psearch::modeling {

const std::vector<std::string>& memory_format_names() {
  static const std::vector<std::string> names{"contiguous", "channels_last"};
  return names;
}

at::MemoryFormat memory_format_from_name(const std::string& name) {
  if (name == "contiguous") return at::MemoryFormat::Contiguous;
  if (name == "channels_last") return at::MemoryFormat::ChannelsLast;
  throw std::runtime_error("unknown memory format '" + name + "' (expected contiguous or channels_last)");
}

void set_memory_format(torch::nn::Module& module, at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  auto convert = [format](at::Tensor& t) {
    if (t.defined() && t.dim() == 4) t.set_data(t.data().contiguous(format));
  };
  for (at::Tensor& p : module.parameters()) convert(p);
  for (at::Tensor& b : module.buffers()) convert(b);
}

}  // namespace psearch::modeling
