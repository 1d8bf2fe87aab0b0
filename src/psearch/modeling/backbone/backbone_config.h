#pragma once
/// The ResNet a config's model.backbone section asks for, shared by the model families.
#include "psearch/config/config.h"
#include "psearch/modeling/backbone/resnet.h"

namespace psearch::modeling {

/// Depth from model.backbone.arch ("resnet18" -> 18), norm and freeze_at as given.
/// Throws std::invalid_argument for an unknown arch (validation refuses it first).
ResNetOptions resnet_options(const config::BackboneConfig& backbone);

}  // namespace psearch::modeling
