#include "psearch/modeling/person_search_model.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <stdexcept>
#include <utility>

#include "psearch/checkpoint/state_dict.h"

namespace psearch::modeling {

void PersonSearchModelImpl::init_from(const std::string& source_type, checkpoint::TensorMap state,
                                      const std::string& path) {
  if (source_type != type())
    throw std::runtime_error(path + ": holds a '" + source_type + "' model; a '" + type() +
                             "' model can start from '" + type() + "' checkpoints only");
  checkpoint::load_state_dict(*this, state, checkpoint::Strictness::kStrict, path);
}

at::Tensor weighted_total(const std::map<std::string, at::Tensor>& losses, const std::vector<std::string>& names,
                          const std::map<std::string, double>& weights) {
  at::Tensor total;
  for (const auto& name : names) {
    const auto w = weights.find(name);
    const at::Tensor term = losses.at(name) * (w == weights.end() ? 1.0 : w->second);
    total = total.defined() ? total + term : term;
  }
  return total;
}

PersonSearchAdapter::PersonSearchAdapter(PersonSearchModel model)
    : model_(std::move(model)), device_(model_->parameters().front().device()) {
  model_->eval();
}

Detections PersonSearchAdapter::detect(const at::Tensor& image) { return detect_batch({image}).front(); }

std::vector<Detections> PersonSearchAdapter::detect_batch(const std::vector<at::Tensor>& images) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> on_device;
  for (const auto& image : images) on_device.push_back(image.to(device_));
  std::vector<Detections> out;
  for (const Detections& d : model_->detect(on_device)) out.push_back({d.boxes.cpu(), d.scores.cpu(), d.features.cpu()});
  return out;
}

at::Tensor PersonSearchAdapter::embed(const at::Tensor& image, const at::Tensor& boxes) {
  torch::NoGradGuard no_grad;
  return model_->embed({image.to(device_)}, {boxes.to(device_, at::kFloat)}).front().cpu();
}

}  // namespace psearch::modeling
