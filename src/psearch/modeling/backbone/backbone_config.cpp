#include "psearch/modeling/backbone/backbone_config.h"

#include <stdexcept>

namespace psearch::modeling {

ResNetOptions resnet_options(const config::BackboneConfig& b) {
  int64_t depth = 0;
  if (b.arch == "resnet18") depth = 18;
  if (b.arch == "resnet34") depth = 34;
  if (b.arch == "resnet50") depth = 50;
  if (depth == 0) throw std::invalid_argument("unknown backbone '" + b.arch + "'");
  return ResNetOptions()
      .depth(depth)
      .norm(b.norm == "frozen" ? NormKind::kFrozen : NormKind::kBatchNorm)
      .freeze_at(b.freeze_at);
}

}  // namespace psearch::modeling
