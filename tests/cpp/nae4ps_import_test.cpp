// Official NAE4PS checkpoints (fixture written by tests/python/fixtures_nae4ps.py in the
// official key layout) load into the psearch NAE model by the documented key map.
#include <gtest/gtest.h>

#include <string>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/engine/nae4ps_import.h"
#include "psearch/engine/training_checkpoint.h"
#include "test_util.h"

namespace psearch::engine {
namespace {

namespace ms = psearch::modeling;

/// The fixture's model: NAE on ResNet-18 with the official heads (fused res4, box BN).
ms::TwoStageModel official_like_nae(int64_t num_pids, ms::NormKind norm) {
  ms::TwoStageOptions o(num_pids);
  o.head = ms::TwoStageHead::kNae;
  o.backbone = ms::ResNetOptions().depth(18).norm(norm).freeze_at(1);
  o.roi_heads.bbox_reg_bn(true).feature_pool("max");
  o.embedding.dim(256).fuse_res4(true);
  o.oim.num_cq_size(50);
  return ms::TwoStageModel(o);
}

TEST(Nae4psImport, EveryOfficialTensorLandsWhereTheKeyMapSays) {
  const std::string path = test::fixture("nae4ps_checkpoint.pth");
  ASSERT_EQ(nae4ps_num_pids(path), 7);
  for (auto norm : {ms::NormKind::kBatchNorm, ms::NormKind::kFrozen}) {
    auto model = official_like_nae(nae4ps_num_pids(path), norm);
    load_nae4ps_checkpoint(*model, path);  // strict: every model tensor is covered
    const checkpoint::TensorMap file = checkpoint::load_tensors(path);
    const checkpoint::TensorMap ours = model_state(*model);
    const std::pair<const char*, const char*> pairs[] = {
        {"backbone.layer2.1.bn1.running_var", "backbone.layer2.1.bn1.running_var"},
        {"rpn.head.conv.weight", "rpn.head.conv.0.0.weight"},
        {"rpn.head.bbox_pred.bias", "rpn.head.bbox_pred.bias"},
        {"roi_heads.box_head.layer4.0.downsample.0.weight", "roi_heads.head.0.downsample.0.weight"},
        {"roi_heads.box_predictor.bbox_pred.0.weight", "roi_heads.bbox_pred.weight"},
        {"roi_heads.box_predictor.bbox_pred.1.running_mean", "roi_heads.bbox_bn.running_mean"},
        {"roi_heads.embedding_head.projectors.feat_res4.0.weight", "embedding_head.proj_res4.0.weight"},
        {"roi_heads.embedding_head.projectors.feat_res5.1.bias", "embedding_head.proj_res5.1.bias"},
        {"roi_heads.embedding_head.rescaler.running_var", "nae.rescaler.running_var"},
        {"roi_heads.reid_loss.lut", "reid_loss.lut"},
        {"roi_heads.reid_loss.cq", "reid_loss.cq"},
    };
    for (const auto& [from, to] : pairs) {
      const std::string key = std::string("model.") + from;  // the checkpoint dict's "model" entry
      ASSERT_TRUE(file.count(key) && ours.count(to)) << from << " -> " << to;
      EXPECT_TRUE(file.at(key).equal(ours.at(to))) << from << " -> " << to;
    }
    EXPECT_EQ(model->reid_loss()->queue_header(), 0);
  }
}

TEST(Nae4psImport, UnknownKeysAndOtherFilesAreRefused) {
  auto model = official_like_nae(7, ms::NormKind::kFrozen);
  checkpoint::TensorMap state = checkpoint::load_tensors(test::fixture("nae4ps_checkpoint.pth"));
  state["model.roi_heads.mystery.weight"] = state.begin()->second;
  try {
    map_nae4ps_state(state, *model, "x.pth");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "x.pth: unknown NAE4PS checkpoint key 'roi_heads.mystery.weight'");
  }
  // A torchvision backbone file is not a NAE4PS checkpoint.
  EXPECT_THROW(nae4ps_num_pids(test::fixture("resnet18.pth")), std::runtime_error);
  // A model of the wrong size (ResNet-50 trunk) does not take the ResNet-18 file.
  ms::TwoStageOptions big(7);
  big.roi_heads.bbox_reg_bn(true);
  big.oim.num_cq_size(50);
  ms::TwoStageModel resnet50(big);
  EXPECT_THROW(load_nae4ps_checkpoint(*resnet50, test::fixture("nae4ps_checkpoint.pth")), std::runtime_error);
}

}  // namespace
}  // namespace psearch::engine
