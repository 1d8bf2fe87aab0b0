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

MobileNetV2Options mobilenet_v2_options(const config::BackboneConfig& b) {
  int64_t frozen = 0;
  if (b.freeze_at > 0)
    while (frozen < MobileNetV2Impl::kNumBlocks && MobileNetV2Impl::stride(frozen) <= (int64_t{1} << b.freeze_at))
      ++frozen;
  return MobileNetV2Options()
      .norm(b.norm == "frozen" ? NormKind::kFrozen : NormKind::kBatchNorm)
      .frozen_blocks(frozen);
}

}  // namespace psearch::modeling
