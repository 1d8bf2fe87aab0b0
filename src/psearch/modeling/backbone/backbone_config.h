#pragma once
/// The ResNet a config's model.backbone section asks for, shared by the model families.
#include "psearch/config/config.h"
#include "psearch/modeling/backbone/mobilenet_v2.h"
#include "psearch/modeling/backbone/resnet.h"

namespace psearch::modeling {

/// Depth from model.backbone.arch ("resnet18" -> 18), norm and freeze_at as given.
/// Throws std::invalid_argument for an unknown arch (validation refuses it first).
ResNetOptions resnet_options(const config::BackboneConfig& backbone);

/// MobileNetV2 with norm as given; freeze_at k freezes every block whose output stride is
/// at most 2^k (1: features.0 .. 1, 2: to features.3, 3: to 6, 4: to 13), ResNet's rule.
MobileNetV2Options mobilenet_v2_options(const config::BackboneConfig& backbone);

}  // namespace psearch::modeling
