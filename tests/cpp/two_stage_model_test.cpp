// The assembled two-stage models (OIM-base, NAE, NAE+): parameter names, loss terms and
// their edge cases, both inference paths, and a tiny overfit run per head.
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "psearch/boxes/box_ops.h"
#include "psearch/modeling/two_stage/two_stage_model.h"
#include "tiny_scenes.h"
#include "tiny_two_stage.h"

namespace psearch::modeling {
namespace {

class TwoStageModelTest : public ::testing::TestWithParam<TwoStageHead> {};

TEST_P(TwoStageModelTest, ParameterNamesFollowTheLayout) {
  TwoStageOptions options = tiny_options(GetParam());
  options.roi_heads.bbox_reg_bn(true);
  TwoStageModel model(options);
  std::set<std::string> keys;
  for (const auto& item : model->named_parameters()) keys.insert(item.key());
  for (const auto& item : model->named_buffers()) keys.insert(item.key());
  EXPECT_TRUE(keys.count("backbone.layer3.0.conv1.weight"));
  EXPECT_FALSE(keys.count("backbone.layer4.0.conv1.weight")) << "layer4 lives in the RoI head only";
  EXPECT_TRUE(keys.count("roi_heads.head.0.conv1.weight"));
  EXPECT_TRUE(keys.count("roi_heads.bbox_bn.weight"));
  EXPECT_TRUE(keys.count("rpn.head.cls_logits.weight"));
  EXPECT_TRUE(keys.count("embedding_head.proj_res4.0.weight"));
  EXPECT_TRUE(keys.count("reid_loss.lut") && keys.count("reid_loss.cq") && keys.count("reid_loss.header_cq"));
  EXPECT_EQ(keys.count("roi_heads.cls_score.weight"), GetParam() == TwoStageHead::kOim ? 1u : 0u);
  EXPECT_EQ(keys.count("nae.rescaler.weight"), GetParam() == TwoStageHead::kOim ? 0u : 1u);
  // Every parameter is registered once (the shared layer4 is not counted twice).
  EXPECT_EQ(model->parameters().size(), model->named_parameters().size());
}

TEST_P(TwoStageModelTest, TrainingLossesAreFiniteAndBackpropagate) {
  TwoStageModel model(tiny_options(GetParam()));
  model->train();
  auto scenes = tiny_scenes();
  // The OIM lookup table starts at zero, so OIM's gradient is 0 on the very first batch;
  // the second batch sees the rows the first one wrote.
  model->forward_train({scenes[0].image, scenes[1].image}, {scenes[0].target, scenes[1].target});
  auto losses = model->forward_train({scenes[2].image, scenes[3].image}, {scenes[2].target, scenes[3].target});
  for (const char* key : {"loss_objectness", "loss_rpn_box_reg", "loss_box_reg", "loss_detection", "loss_reid", "loss"}) {
    ASSERT_TRUE(losses.count(key)) << key;
    EXPECT_TRUE(at::isfinite(losses[key]).item<bool>()) << key;
  }
  EXPECT_GT(losses["loss_reid"].item<double>(), 0.0);
  losses["loss"].backward();
  const at::Tensor g = model->embedding_head()->named_parameters()["proj_res5.0.weight"].grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<double>(), 0.0);
  // The OIM memory moved: the identities seen have non-zero lookup-table rows.
  EXPECT_GT(model->reid_loss()->lut.abs().sum().item<double>(), 0.0);
}

TEST_P(TwoStageModelTest, ImplementsTheRegisteredInterface) {
  TwoStageOptions options = tiny_options(GetParam());
  options.loss_weights = {{"loss_box_reg", 10.0}, {"loss_reid", 0.5}};
  const PersonSearchModel model = std::make_shared<TwoStageModelImpl>(options);
  const ModelType& type = model_type(two_stage_head_name(GetParam()));
  EXPECT_EQ(model->type(), type.name);
  EXPECT_EQ(type.family, "two_stage");
  EXPECT_EQ(model->loss_names(), type.loss_names);
  EXPECT_EQ(model->embedding_dim(), 32);
  EXPECT_EQ(model->num_pids(), 4);

  model->train();
  auto scenes = tiny_scenes();
  auto losses = model->forward_train({scenes[0].image, scenes[1].image}, {scenes[0].target, scenes[1].target});
  std::set<std::string> keys, expected(type.loss_names.begin(), type.loss_names.end());
  for (const auto& [key, value] : losses) keys.insert(key);
  expected.insert("loss");
  EXPECT_EQ(keys, expected);
  // The total weighs each term as train.loss_weights says, unlisted terms by 1.
  const double by_hand = losses["loss_objectness"].item<double>() + losses["loss_rpn_box_reg"].item<double>() +
                         10.0 * losses["loss_box_reg"].item<double>() + losses["loss_detection"].item<double>() +
                         0.5 * losses["loss_reid"].item<double>();
  EXPECT_NEAR(losses["loss"].item<double>(), by_hand, 1e-5 * std::max(1.0, std::abs(by_hand)));
}

TEST_P(TwoStageModelTest, WithoutGroundTruthTheBoxLossesAreExactlyZero) {
  TwoStageModel model(tiny_options(GetParam()));
  model->train();
  auto scenes = tiny_scenes();
  const TrainingTarget empty{at::zeros({0, 4}), at::zeros({0}, at::kLong)};
  auto losses = model->forward_train({scenes[0].image, scenes[1].image}, {empty, empty});
  EXPECT_EQ(losses["loss_box_reg"].item<double>(), 0.0);
  EXPECT_EQ(losses["loss_rpn_box_reg"].item<double>(), 0.0);
  EXPECT_EQ(losses["loss_reid"].item<double>(), 0.0);
  EXPECT_GT(losses["loss_detection"].item<double>(), 0.0);
  EXPECT_GT(losses["loss_objectness"].item<double>(), 0.0);
  losses["loss"].backward();  // still a valid graph
}

TEST_P(TwoStageModelTest, InferencePathsTakeBatchesOfDifferentSizes) {
  TwoStageModel model(tiny_options(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor a = at::rand({3, 96, 128}), b = at::rand({3, 120, 90});
  const auto dets = model->detect({a, b});
  ASSERT_EQ(dets.size(), 2u);
  for (const auto& d : dets) {
    EXPECT_EQ(d.boxes.size(0), d.scores.size(0));
    EXPECT_EQ(d.features.size(0), d.boxes.size(0));
    if (d.features.size(0) > 0) EXPECT_EQ(d.features.size(1), 32);
  }
  const at::Tensor qa = at::tensor({10.f, 10.f, 40.f, 80.f, 50.f, 5.f, 90.f, 90.f}).view({2, 4});
  const at::Tensor qb = at::tensor({0.f, 0.f, 89.f, 119.f}).view({1, 4});
  const auto emb = model->embed({a, b}, {qa, qb});
  ASSERT_EQ(emb.size(), 2u);
  EXPECT_EQ(emb[0].sizes(), (at::IntArrayRef{2, 32}));
  EXPECT_EQ(emb[1].sizes(), (at::IntArrayRef{1, 32}));
  // Queries have norm 1.
  EXPECT_LT((emb[0].norm(2, {1}) - 1).abs().max().item<double>(), 1e-5);
  // A batch of same-sized images (no padding differences) gives each image's own result.
  const at::Tensor c = at::rand({3, 96, 128});
  const auto pair = model->embed({a, c}, {qa, qa});
  const auto alone = model->embed({c}, {qa});
  EXPECT_LT((alone[0] - pair[1]).abs().max().item<double>(), 1e-5);
  const auto dets_pair = model->detect({a, c});
  const auto dets_alone = model->detect({c});
  ASSERT_EQ(dets_pair[1].boxes.sizes(), dets_alone[0].boxes.sizes());
  if (dets_alone[0].boxes.numel() > 0)
    EXPECT_LT((dets_pair[1].features - dets_alone[0].features).abs().max().item<double>(), 1e-5);
}

/// Overfits four scenes, then checks that the model finds the persons again and that a
/// person's query embedding ranks the same identity first among another scene's detections.
TEST_P(TwoStageModelTest, TinyOverfit) {
  at::manual_seed(0);
  TwoStageModel model(tiny_options(GetParam()));
  expect_tiny_overfit(*model, 0.02);
}

TEST(TwoStageModel, EmbeddingBatchNormStartsAsConfigured) {
  TwoStageOptions official = tiny_options(TwoStageHead::kNae), unit = official;
  unit.embedding.bn_init("unit");
  const at::Tensor small = TwoStageModel(official)->named_parameters()["embedding_head.proj_res5.1.weight"];
  const at::Tensor one = TwoStageModel(unit)->named_parameters()["embedding_head.proj_res5.1.weight"];
  EXPECT_LT(small.abs().max().item<double>(), 0.1);  // N(0, 0.01): 16 draws stay far below 0.1
  EXPECT_EQ(one.min().item<double>(), 1.0);
  EXPECT_EQ(one.max().item<double>(), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Heads, TwoStageModelTest,
                         ::testing::Values(TwoStageHead::kOim, TwoStageHead::kNae, TwoStageHead::kNaePlus),
                         [](const auto& info) { return two_stage_head_name(info.param); });

}  // namespace
}  // namespace psearch::modeling
