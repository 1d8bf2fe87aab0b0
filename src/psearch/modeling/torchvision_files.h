#pragma once
/// Telling torchvision checkpoints apart by their keys, so that a file given in the wrong
/// place (a RetinaNet where a ResNet is expected, or the reverse) is named in one line
/// instead of as a list of hundreds of missing and unexpected keys.
#include <string>

#include "psearch/checkpoint/torch_file.h"

namespace psearch::modeling {

enum class TorchvisionKind {
  kResNet,      ///< an ImageNet classifier: conv1.*, layer1.* .. layer4.*, fc.*
  kRetinaNet,   ///< retinanet_resnet50_fpn: backbone.body.*, backbone.fpn.*, head.classification_head.*
  kFasterRCNN,  ///< fasterrcnn_*: backbone.*, rpn.*, roi_heads.*
  kMobileNetV2, ///< mobilenet_v2: features.0.0.* .. features.18.*, classifier.* (optional)
  kUnknown,
};

/// What a torch.save'd state_dict holds, from a few telling keys.
TorchvisionKind torchvision_kind(const checkpoint::TensorMap& state);

/// "a torchvision ResNet classifier checkpoint", ...
std::string describe(TorchvisionKind kind);

/// Throws std::runtime_error "<path>: is <what it is>, not <expected> ..." when `state` is
/// recognisably another kind of torchvision file than `expected` (unknown files pass, so
/// that strict loading can list their keys).
void require_torchvision_kind(const checkpoint::TensorMap& state, TorchvisionKind expected, const std::string& path);

/// Removes the "num_batches_tracked" counters of BatchNorm layers (files trained with
/// BatchNorm2d; our backbones freeze the statistics and have no counter).
void drop_bn_counters(checkpoint::TensorMap& state);

}  // namespace psearch::modeling
