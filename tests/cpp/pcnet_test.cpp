// PCNet (src/psearch/modeling/one_stage/): Cross Scale Aggregation and the side losses
// against numpy loops (tests/python/fixtures_pcnet.py), the head's shapes for one and four
// anchors, the losses and their edge cases, the inference paths, and a tiny overfit run.
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <iostream>
#include <string>
#include <vector>

#include "psearch/boxes/box_ops.h"
#include "psearch/checkpoint/torch_file.h"
#include "psearch/config/config.h"
#include "psearch/modeling/losses/pcnet_losses.h"
#include "psearch/modeling/model_registry.h"
#include "psearch/modeling/one_stage/pcnet_model.h"
#include "fixture_file.h"
#include "test_util.h"
#include "tiny_scenes.h"

namespace psearch::modeling {
namespace {


at::Tensor get(const std::string& key) {
  static const psearch::test::FixtureFile file("pcnet.pt");
  return file.get(key);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(CrossScaleAggregation, MatchesNumpyLoops) {
  torch::NoGradGuard no_grad;
  const at::Tensor point = get("csa.point");
  const int64_t d = point.size(1);
  CrossScaleAggregation csa(d, 3, get("csa.clamp").item<double>());
  csa->to(at::kDouble);
  csa->query()->weight.copy_(get("csa.query.weight"));
  csa->query()->bias.copy_(get("csa.query.bias"));
  csa->key()->weight.copy_(get("csa.key.weight"));
  csa->key()->bias.copy_(get("csa.key.bias"));
  const_cast<at::Tensor&>(csa->level_scales()).copy_(get("csa.level_scales"));
  std::vector<at::Tensor> cells;
  std::vector<int64_t> strides;
  for (int l = 0; l < 3; ++l) {
    cells.push_back(get("csa.cells." + std::to_string(l)));
    strides.push_back(get("csa.strides")[l].item<int64_t>());
  }
  const PyramidCells pc = pyramid_cells(cells, strides, 0);
  const at::Tensor boxes = get("csa.boxes");
  const double attention_err = max_diff(csa->attention(point, boxes, pc), get("csa.attention"));
  const double output_err = max_diff(csa->forward(point, boxes, pc), get("csa.expected"));
  std::cout << "[parity] CSA vs numpy (float64): attention " << attention_err << ", output " << output_err << "\n";
  EXPECT_LT(attention_err, 1e-12);
  EXPECT_LT(output_err, 1e-12);
  // Box 2 holds no cell centre: f = f'.
  EXPECT_EQ(max_diff(csa->forward(point, boxes, pc)[2], point[2]), 0.0);
}

TEST(CrossScaleAggregation, GradientReachesEveryInput) {
  CrossScaleAggregation csa(4, 2);
  const at::Tensor f0 = at::rand({1, 4, 4, 4}).requires_grad_(), f1 = at::rand({1, 4, 2, 2}).requires_grad_();
  const at::Tensor point = at::rand({2, 4}).requires_grad_();
  const at::Tensor boxes = at::tensor({0.0f, 0.0f, 30.0f, 30.0f, 10.0f, 0.0f, 32.0f, 20.0f}).view({2, 4});
  csa->forward(point, boxes, pyramid_cells({f0, f1}, {8, 16}, 0)).pow(2).sum().backward();
  const std::vector<std::pair<std::string, at::Tensor>> inputs = {
      {"P3", f0}, {"P4", f1}, {"f'", point}, {"key", csa->key()->weight}, {"query", csa->query()->weight},
      {"level_scales", csa->level_scales()}};
  for (const auto& [name, t] : inputs) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
  }
}

TEST(PCNetLosses, DistanceLossMatchesNumpyLoops) {
  for (int64_t m : {3, 2}) {
    const double got =
        distance_loss_sum(get("dist.offsets"), get("dist.strides"), get("dist.heights"), m).item<double>();
    const double expected = get("dist.expected." + std::to_string(m)).item<double>();
    EXPECT_NEAR(got, expected, 1e-9 * expected) << "M = " << m;
  }
  // Points spread as the loss wants (rows h*/M apart, no offsets) cost nothing: a stride-20
  // cell whose kernel rows are 20 px apart on a 60 px person with M = 3.
  const at::Tensor offsets = at::zeros({1, 18}, at::kDouble);
  EXPECT_NEAR(distance_loss_sum(offsets, at::tensor({20.0}), at::tensor({60.0}), 3).item<double>(), 0.0, 1e-12);
}

TEST(PCNetLosses, TripletMatchesNumpyLoops) {
  for (const bool official : {false, true}) {
    int64_t count = 0;
    const double got = triplet_loss_sum(get("tri.csa"), get("tri.point"), get("tri.pids"),
                                        get("tri.margin").item<double>(), official, &count)
                           .item<double>();
    const double expected = get(std::string("tri.expected.") + (official ? "official" : "paper")).item<double>();
    EXPECT_NEAR(got, expected, 1e-9) << (official ? "official" : "paper");
    EXPECT_EQ(count, get("tri.count").item<int64_t>());
  }
  // One identity only: no negative, no term.
  const at::Tensor x = at::rand({3, 4});
  EXPECT_EQ(triplet_loss_sum(x, x, at::tensor({int64_t{1}, int64_t{1}, int64_t{1}}), 0.5, false).item<double>(), 0.0);
}

/// A PCNet small enough for unit tests: ResNet-18 with trainable BN, anchors for 96x128
/// scenes, 32-d embeddings, towers of width 32, 4 identities.
config::Config tiny_config(int64_t anchors_per_cell = 1) {
  config::Config c;
  c.model.type = "pcnet";
  c.model.backbone.arch = "resnet18";
  c.model.backbone.norm = "batchnorm";
  c.model.backbone.freeze_at = 0;
  c.model.backbone.weights.clear();
  c.model.embedding_dim = 32;
  c.model.oim.num_pids = 4;
  c.model.oim.queue_size = 16;
  auto& o = c.model.one_stage;
  o.head_channels = 32;
  o.anchor_sizes = {{16}, {32}, {64}, {128}, {256}};
  if (anchors_per_cell == 4) o.aspect_ratios = std::vector<std::vector<double>>(5, {1.0, 2.0});
  if (anchors_per_cell == 4) o.anchor_sizes = {{16, 22}, {32, 45}, {64, 90}, {128, 181}, {256, 362}};
  c.train.min_size = 96;
  c.train.max_size = 160;
  c.inference.min_size = 96;
  c.inference.max_size = 160;
  c.inference.score_thresh = 0.3;
  c.inference.nms_thresh = 0.4;
  c.inference.detections_per_img = 20;
  return c;
}

PCNetModel tiny_model(const config::Config& c) {
  return PCNetModel(std::dynamic_pointer_cast<PCNetModelImpl>(model_type("pcnet").build(c, 4)));
}

TEST(PCNetModel, RegisteredWithItsLossNames) {
  const ModelType& t = model_type("pcnet");
  EXPECT_EQ(t.family, "one_stage");
  EXPECT_EQ(t.loss_names, (std::vector<std::string>{"loss_cls", "loss_box_reg", "loss_reid", "loss_dist", "loss_triplet"}));
}

TEST(PCNetModel, HeadShapesForOneAndFourAnchors) {
  torch::NoGradGuard no_grad;
  for (const int64_t a : {1, 4}) {
    PCNetModel model = tiny_model(tiny_config(a));
    model->eval();
    const PCNetForward f = model->run({at::rand({3, 96, 128})}, {}, model->test_transform());
    // 96x128 padded to 96x128: P3 12x16, P4 6x8, P5 3x4, P6 2x2, P7 1x1.
    const int64_t cells = 12 * 16 + 6 * 8 + 3 * 4 + 2 * 2 + 1;
    EXPECT_EQ(f.head.cls_logits.sizes(), (at::IntArrayRef{1, cells * a, 1})) << a;
    EXPECT_EQ(f.head.box_deltas.sizes(), (at::IntArrayRef{1, cells * a, 4})) << a;
    EXPECT_EQ(f.head.reid.sizes(), (at::IntArrayRef{1, cells * a, 32})) << a;
    EXPECT_EQ(f.head.offsets.sizes(), (at::IntArrayRef{1, cells * a, 18})) << a;
    EXPECT_EQ(f.anchors.size(0), cells * a) << a;
    EXPECT_EQ(f.head.cell_features[0].sizes(), (at::IntArrayRef{1, 32, 12, 16})) << a;
  }
}

TEST(PCNetModel, LossesAreFiniteAndTrainEveryPart) {
  at::manual_seed(0);
  PCNetModel model = tiny_model(tiny_config());
  model->train();
  const auto scenes = tiny_scenes();
  auto losses = model->forward_train({scenes[0].image, scenes[1].image}, {scenes[0].target, scenes[1].target});
  for (const auto& name : pcnet_loss_names()) {
    ASSERT_TRUE(losses.count(name)) << name;
    EXPECT_TRUE(std::isfinite(losses[name].item<double>())) << name;
  }
  EXPECT_GT(losses["loss_dist"].item<double>(), 0);
  EXPECT_GE(losses["loss_triplet"].item<double>(), 0);
  // The OIM lookup table starts at zero, so the first step's re-id loss has no gradient;
  // the second one (the table now holds the first step's features) reaches CSA.
  losses = model->forward_train({scenes[2].image, scenes[3].image}, {scenes[2].target, scenes[3].target});
  losses["loss"].backward();
  for (const std::string name : {"head.offset_coord.weight", "head.offset_scales", "head.cpp.0", "head.cls_logits.weight",
                                 "csa.key.weight", "csa.level_scales", "backbone.fpn.layer_blocks.0.0.weight"}) {
    const at::Tensor g = model->named_parameters()[name].grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_GT(g.abs().sum().item<double>(), 0) << name;

  }
}

TEST(PCNetModel, ImageWithoutPersonsAndAblations) {
  at::manual_seed(0);
  for (const std::string variant : {"default", "conv", "parallel", "no_csa", "zero_offsets"}) {
    config::Config c = tiny_config();
    if (variant == "zero_offsets") c.model.one_stage.offset_init = "zero";
    if (variant == "conv") c.model.one_stage.reid_features = "conv";
    if (variant == "parallel") c.model.one_stage.reid_branch = "parallel";
    if (variant == "no_csa") c.model.one_stage.csa = false;
    PCNetModel model = tiny_model(c);
    if (variant == "zero_offsets") {  // the points start on the regular 3x3 grid
      torch::NoGradGuard no_grad;
      model->eval();
      const PCNetForward f = model->run({at::rand({3, 96, 128})}, {}, model->test_transform());
      EXPECT_EQ(f.head.offsets.abs().max().item<double>(), 0.0);
    }
    model->train();
    TrainingTarget empty{at::zeros({0, 4}), at::zeros({0}, at::kLong)};
    auto losses = model->forward_train({at::rand({3, 96, 128})}, {empty});
    EXPECT_EQ(losses["loss_box_reg"].item<double>(), 0) << variant;
    EXPECT_EQ(losses["loss_reid"].item<double>(), 0) << variant;
    EXPECT_GT(losses["loss_cls"].item<double>(), 0) << variant;
    losses["loss"].backward();
    const auto scenes = tiny_scenes();
    losses = model->forward_train({scenes[0].image}, {scenes[0].target});
    EXPECT_TRUE(std::isfinite(losses["loss"].item<double>())) << variant;
    if (variant == "conv") EXPECT_EQ(losses["loss_dist"].item<double>(), 0);
  }
}

TEST(PCNetModel, InferencePathsGiveUnitEmbeddings) {
  torch::NoGradGuard no_grad;
  at::manual_seed(0);
  for (const std::string query : {"overlap", "best_anchor"}) {
    config::Config c = tiny_config();
    c.model.one_stage.query_feature = query;
    c.model.one_stage.gallery_aggregation_iou = query == "overlap" ? 0.6 : 0.0;
    c.inference.score_thresh = 0.0;
    PCNetModel model = tiny_model(c);
    model->eval();
    const auto scenes = tiny_scenes();
    const auto q = model->embed({scenes[0].image}, {scenes[0].target.boxes});
    ASSERT_EQ(q[0].sizes(), (at::IntArrayRef{2, 32}));
    EXPECT_LT((q[0].norm(2, {1}) - 1).abs().max().item<double>(), 1e-5);
    const auto d = model->detect({scenes[0].image, scenes[1].image});
    ASSERT_EQ(d.size(), 2u);
    ASSERT_GT(d[0].boxes.size(0), 0);
    EXPECT_EQ(d[0].features.size(0), d[0].boxes.size(0));
    EXPECT_LT((d[0].features.norm(2, {1}) - 1).abs().max().item<double>(), 1e-5);
    EXPECT_LE(d[0].boxes.size(0), 20);
  }
}

/// The overfit check of every model (tiny_scenes.h): the loss falls more than 10x, the
/// persons are found again, and a query ranks its identity first.
TEST(PCNetModel, TinyOverfit) {
  at::manual_seed(0);
  PCNetModel model = tiny_model(tiny_config());
  expect_tiny_overfit(*model, 0.01, /*clip_grad_norm=*/10.0);
}

}  // namespace
}  // namespace psearch::modeling
