#include "psearch/modeling/one_stage/retinanet.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <cmath>
#include <stdexcept>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/layers/conv_relu.h"
#include "psearch/modeling/torchvision_files.h"
#include "psearch/util/strings.h"

namespace psearch::modeling {

namespace nn = torch::nn;

RetinaNetTowerImpl::RetinaNetTowerImpl(int64_t channels, int64_t num_convs, int64_t num_anchors,
                                       int64_t outputs_per_anchor, const std::string& predictor_name,
                                       double prior_probability)
    : outputs_per_anchor_(outputs_per_anchor) {
  conv_ = register_module("conv", nn::Sequential());
  for (int64_t i = 0; i < num_convs; ++i) conv_->push_back(ConvReLU(channels));
  predictor_ = register_module(
      predictor_name, nn::Conv2d(nn::Conv2dOptions(channels, num_anchors * outputs_per_anchor, 3).padding(1)));
  for (auto& p : parameters()) {
    if (p.dim() == 1) {
      nn::init::zeros_(p);
    } else {
      nn::init::normal_(p, 0.0, 0.01);
    }
  }
  if (prior_probability > 0) nn::init::constant_(predictor_->bias, -std::log((1 - prior_probability) / prior_probability));
}

at::Tensor RetinaNetTowerImpl::forward(const std::vector<at::Tensor>& features) {
  std::vector<at::Tensor> flat;
  for (const auto& f : features) flat.push_back(flatten_per_anchor(predictor_->forward(conv_->forward(f)), outputs_per_anchor_));
  return at::cat(flat, 1);
}

RetinaNetImpl::RetinaNetImpl(const RetinaNetOptions& options)
    : options_(options), detector_(options.detection()), transform_(options.transform()) {
  backbone_ = register_module("backbone", BackboneWithFPN(options.backbone()));
  head_ = register_module("head", std::make_shared<nn::Module>());
  const int64_t c = backbone_->out_channels(), a = detector_.anchors_per_cell();
  classification_ = head_->register_module(
      "classification_head", RetinaNetTower(c, options.num_convs(), a, options.num_classes(), "cls_logits", 0.01));
  regression_ = head_->register_module("regression_head", RetinaNetTower(c, options.num_convs(), a, 4, "bbox_reg"));
}

DensePredictions RetinaNetImpl::predict(const std::vector<at::Tensor>& features) {
  DensePredictions p;
  p.cls_logits = classification_->forward(features);
  p.box_deltas = regression_->forward(features);
  for (const auto& f : features) p.anchors_per_level.push_back(f.size(2) * f.size(3) * detector_.anchors_per_cell());
  return p;
}

std::vector<LabeledDetections> RetinaNetImpl::detect(const std::vector<at::Tensor>& images) {
  const TransformedBatch batch = transform_(images);
  const std::vector<at::Tensor> features = backbone_->forward(batch.images);
  const DensePredictions p = predict(features);
  const at::Tensor anchors = detector_.anchors(batch.sizes, features);
  std::vector<at::Tensor> boxes;
  std::vector<LabeledDetections> out;
  for (size_t i = 0; i < images.size(); ++i) {
    const DenseCandidates c = detector_.detect(p, anchors, static_cast<int64_t>(i), batch.sizes.images[i]);
    boxes.push_back(c.all.boxes.index_select(0, c.keep));
    out.push_back({at::Tensor(), c.all.scores.index_select(0, c.keep), c.all.labels.index_select(0, c.keep)});
  }
  const std::vector<at::Tensor> original = transform_.postprocess(boxes, batch.sizes.images, batch.original_sizes);
  for (size_t i = 0; i < out.size(); ++i) out[i].boxes = original[i];
  return out;
}

std::map<std::string, at::Tensor> RetinaNetImpl::forward_train(const std::vector<at::Tensor>& images,
                                                               const std::vector<at::Tensor>& boxes,
                                                               const std::vector<at::Tensor>& labels) {
  const TransformedBatch batch = transform_(images, boxes);
  const std::vector<at::Tensor> features = backbone_->forward(batch.images);
  const DensePredictions p = predict(features);
  const at::Tensor anchors = detector_.anchors(batch.sizes, features);
  auto losses = detector_.losses(p, anchors, detector_.match(anchors, batch.boxes), batch.boxes, labels);
  losses["loss"] = losses.at("loss_cls") + losses.at("loss_box_reg");
  return losses;
}

checkpoint::LoadReport load_torchvision_retinanet(RetinaNetImpl& model, const std::string& path,
                                                  checkpoint::Strictness strictness) {
  checkpoint::TensorMap state = checkpoint::load_tensors(path);
  require_torchvision_kind(state, TorchvisionKind::kRetinaNet, path);
  drop_bn_counters(state);
  return checkpoint::load_state_dict(model, state, strictness, path);
}

}  // namespace psearch::modeling
