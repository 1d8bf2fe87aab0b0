#include "psearch/modeling/torchvision_files.h"

#include <stdexcept>

#include "psearch/util/strings.h"

namespace psearch::modeling {

TorchvisionKind torchvision_kind(const checkpoint::TensorMap& state) {
  if (state.count("head.classification_head.cls_logits.weight")) return TorchvisionKind::kRetinaNet;
  if (state.count("rpn.head.cls_logits.weight") || state.count("roi_heads.box_predictor.cls_score.weight"))
    return TorchvisionKind::kFasterRCNN;
  if (state.count("conv1.weight") && state.count("layer1.0.conv1.weight")) return TorchvisionKind::kResNet;
  if (state.count("features.0.0.weight") && state.count("features.18.0.weight")) return TorchvisionKind::kMobileNetV2;
  return TorchvisionKind::kUnknown;
}

std::string describe(TorchvisionKind kind) {
  switch (kind) {
    case TorchvisionKind::kResNet: return "a torchvision ResNet classifier checkpoint";
    case TorchvisionKind::kRetinaNet: return "a torchvision RetinaNet checkpoint";
    case TorchvisionKind::kFasterRCNN: return "a torchvision Faster R-CNN checkpoint";
    case TorchvisionKind::kMobileNetV2: return "a torchvision MobileNetV2 checkpoint";
    case TorchvisionKind::kUnknown: break;
  }
  return "an unrecognised checkpoint";
}

void require_torchvision_kind(const checkpoint::TensorMap& state, TorchvisionKind expected, const std::string& path) {
  const TorchvisionKind kind = torchvision_kind(state);
  if (kind == expected || kind == TorchvisionKind::kUnknown) return;
  std::string hint;
  if (kind == TorchvisionKind::kRetinaNet)
    hint = " (a RetinaNet file initialises a one-stage model: model.one_stage.retinanet_weights)";
  if (kind == TorchvisionKind::kResNet || kind == TorchvisionKind::kMobileNetV2)
    hint = " (an ImageNet classifier file goes to model.backbone.weights, with the matching model.backbone.arch)";
  throw std::runtime_error(path + ": is " + describe(kind) + ", not " + describe(expected) + hint);
}

void drop_bn_counters(checkpoint::TensorMap& state) {
  for (auto it = state.begin(); it != state.end();)
    it = util::ends_with(it->first, ".num_batches_tracked") ? state.erase(it) : std::next(it);
}

}  // namespace psearch::modeling
