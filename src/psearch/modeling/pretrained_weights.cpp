#include "psearch/modeling/pretrained_weights.h"

#include <cstdlib>

namespace psearch::modeling {

std::string pretrained_weights_path(const std::string& name) {
  const char* dir = std::getenv("PSEARCH_WEIGHTS_DIR");
  if (dir && *dir) return std::string(dir) + "/" + name;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/psearch/weights/" + name;
}

std::string resolve_backbone_weights(const std::string& path) {
  return path == "imagenet" ? pretrained_weights_path(kMobileNetV2ImageNet) : path;
}

}  // namespace psearch::modeling
