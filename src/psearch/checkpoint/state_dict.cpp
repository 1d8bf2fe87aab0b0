#include "psearch/checkpoint/state_dict.h"

#include <algorithm>
#include <torch/csrc/autograd/grad_mode.h>

#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace psearch::checkpoint {
namespace {

std::string shape_text(at::IntArrayRef sizes) {
  std::ostringstream s;
  s << sizes;
  return s.str();
}

/// Parameters and buffers by their dotted names, as Python's state_dict() lists them.
std::unordered_map<std::string, at::Tensor> model_tensors(torch::nn::Module& module) {
  std::unordered_map<std::string, at::Tensor> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[item.key()] = item.value();
  return out;
}

}  // namespace

std::string LoadReport::describe() const {
  std::ostringstream s;
  for (const auto& k : missing) s << "\n  missing key: " << k;
  for (const auto& k : unexpected) s << "\n  unexpected key: " << k;
  for (const auto& k : mismatched) s << "\n  shape mismatch: " << k;
  return s.str();
}

LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& state, Strictness strictness,
                           const std::string& source) {
  LoadReport report;
  auto targets = model_tensors(module);
  torch::NoGradGuard no_grad;
  for (const auto& [key, value] : state) {
    auto it = targets.find(key);
    if (it == targets.end()) {
      report.unexpected.push_back(key);
      continue;
    }
    at::Tensor& target = it->second;
    if (target.sizes() != value.sizes()) {
      report.mismatched.push_back(key + ": checkpoint " + shape_text(value.sizes()) + " vs model " +
                                  shape_text(target.sizes()));
    } else {
      target.copy_(value);
      ++report.loaded;
    }
    targets.erase(it);
  }
  for (const auto& [key, unused] : targets) report.missing.push_back(key);
  std::sort(report.missing.begin(), report.missing.end());

  if (strictness == Strictness::kStrict && !report.ok()) {
    throw std::runtime_error(source + ": checkpoint does not match the model (" +
                             std::to_string(report.missing.size()) + " missing, " +
                             std::to_string(report.unexpected.size()) + " unexpected, " +
                             std::to_string(report.mismatched.size()) +
                             " mis-shaped; non-strict loading must be asked for)" + report.describe());
  }
  return report;
}

}  // namespace psearch::checkpoint
