#pragma once
// The tiny two-stage model every two-stage test builds (ResNet-18 or MobileNetV2 trunk).
#include "psearch/modeling/two_stage/two_stage_model.h"

namespace psearch::modeling {

/// A model small enough for unit tests: ResNet-18 with trainable BN, small anchors and
/// RoI grids, a 32-d embedding, 4 identities.
inline TwoStageOptions tiny_options(TwoStageHead head) {
  TwoStageOptions o(4);
  o.head = head;
  o.backbone = ResNetOptions().depth(18).norm(NormKind::kBatchNorm).freeze_at(0);
  o.rpn.anchor_sizes({{16, 32, 64}}).aspect_ratios({{1.0, 2.0, 3.0}});
  o.rpn.pre_nms_top_n_train(300).post_nms_top_n_train(100).pre_nms_top_n_test(300).post_nms_top_n_test(50);
  o.roi_heads.batch_size_per_image(16).pooler_resolution(4).bbox_reg_bn(false);
  o.roi_heads.score_thresh(0.3).nms_thresh(0.4).detections_per_img(20);
  o.pixel_size = 2;
  o.embedding.dim(32).fuse_res4(true);
  o.oim.num_cq_size(16);
  o.train_transform.min_size(96).max_size(160);
  o.test_transform.min_size(96).max_size(160);
  return o;
}

}  // namespace psearch::modeling
