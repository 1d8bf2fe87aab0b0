// Training runs, checkpoints and model loading on a generated tiny PRW-format dataset:
// exact resume, checkpoints of the wrong model type, NAE -> NAE+ initialisation, ImageNet
// backbone loading, bad dataset paths.
#include <ATen/Parallel.h>
#include <ATen/ops/rand.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/config/config.h"
#include "psearch/data/synth/synth.h"
#include "psearch/engine/trainer.h"
#include "psearch/engine/training_checkpoint.h"
#include "psearch/engine/model_builder.h"
#include "psearch/engine/step_checks.h"
#include "psearch/modeling/two_stage/two_stage_model.h"
#include "test_util.h"

namespace psearch::engine {
namespace {

using test::TempDir;

/// A generated tiny PRW dataset, shared by the tests of this file.
const std::string& tiny_prw_root() {
  static TempDir dir;
  static const std::string root = [] {
    data::synth::SynthOptions o;
    o.format = data::synth::Format::kPrw;
    o.size = data::synth::SizePreset::kTiny;
    o.out = dir.file("prw");
    o.seed = 3;
    data::synth::generate_dataset(o);
    return o.out;
  }();
  return root;
}

/// A model and schedule small enough for unit tests (ResNet-18, 120-px images).
config::Config tiny_config(const std::string& type, int64_t length = 4) {
  const std::string yaml = R"(
version: 2
model:
  type: )" + type + R"(
  backbone: {arch: resnet18, weights: "", norm: batchnorm, freeze_at: 0}
  embedding_dim: 32
  oim: {queue_size: 32}
  two_stage:
    rpn: {anchor_sizes: [[16, 32, 64]], aspect_ratios: [[1.0, 2.0, 3.0]], pre_nms_top_n_train: 300,
          post_nms_top_n_train: 100, pre_nms_top_n_test: 300, post_nms_top_n_test: 50}
    roi_heads: {pooler_resolution: 4, batch_size_per_image: 16, bbox_reg_bn: true}
    embedding: {pixel_size: 2}
train:
  batch_size: 2
  min_size: 120
  max_size: 160
  unit: iteration
  length: )" + std::to_string(length) + R"(
  warmup: 2
  milestones: [3]
  checkpoint_every: 2
  log_every: 1
inference: {min_size: 120, max_size: 160}
dataset: {name: prw, root: )" + tiny_prw_root() + R"(}
)";
  return config::parse_config(yaml, "tiny config");
}

TrainOptions quiet(const std::string& out) {
  TrainOptions o;
  o.out_dir = out;
  o.verbose = false;
  return o;
}

/// Largest absolute difference over all tensors of two states with the same keys.
double max_difference(const checkpoint::TensorMap& a, const checkpoint::TensorMap& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, tensor] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    worst = std::max(worst, (tensor.to(at::kDouble) - it->second.to(at::kDouble)).abs().max().item<double>());
  }
  return worst;
}

TEST(Trainer, ResumesExactly) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);  // bit-exact comparisons need one summation order
  TempDir dir;
  const config::Config config = tiny_config("nae");
  const TrainResult straight = train_model(config, quiet(dir.file("straight")));
  EXPECT_EQ(straight.iterations, 4);
  EXPECT_EQ(straight.checkpoint, dir.file("straight") + "/final.pt");

  TrainOptions first = quiet(dir.file("split"));
  first.stop_after = 3;  // stops between checkpoints: last.pt is written at the stop
  EXPECT_EQ(train_model(config, first).iterations, 3);
  TrainOptions second = quiet(dir.file("split"));
  second.resume = true;
  const TrainResult resumed = train_model(config, second);
  EXPECT_EQ(resumed.iterations, 4);
  at::set_num_threads(threads);

  const CheckpointContents a = load_checkpoint(dir.file("straight") + "/final.pt");
  const CheckpointContents b = load_checkpoint(dir.file("split") + "/final.pt");
  EXPECT_EQ(a.iteration, 4);
  EXPECT_EQ(b.iteration, 4);
  EXPECT_EQ(max_difference(a.state, b.state), 0.0) << "model and OIM memory after resume";
  EXPECT_TRUE(a.state.count("reid_loss.lut"));
  EXPECT_GT(a.state.at("reid_loss.lut").abs().sum().item<double>(), 0.0);
}

TEST(Trainer, ResumeNeedsTheSameConfig) {
  TempDir dir;
  TrainOptions o = quiet(dir.file("run"));
  o.stop_after = 1;
  train_model(tiny_config("oim"), o);
  o.resume = true;
  config::Config other = tiny_config("oim");
  other.train.lr = 0.5;
  EXPECT_THROW(train_model(other, o), std::runtime_error);
}

TEST(Trainer, WrongDatasetPathIsOneLineNamingIt) {
  config::Config config = tiny_config("nae");
  config.dataset.root = "/nonexistent/PRW";
  try {
    TempDir dir;
    train_model(config, quiet(dir.file("run")));
    FAIL() << "no error";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/nonexistent/PRW"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(Trainer, CheckpointOfAnotherModelTypeIsRefused) {
  TempDir dir;
  TrainOptions o = quiet(dir.file("oim"));
  o.stop_after = 1;
  train_model(tiny_config("oim"), o);
  const std::string ckpt = dir.file("oim") + "/last.pt";
  try {
    load_trained_model(ckpt, c10::Device(c10::kCPU), {}, "nae");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), ckpt + ": holds a 'oim' model, not 'nae'");
  }
  // NAE+ starts from NAE (or NAE+) only.
  config::Config plus = tiny_config("nae_plus");
  plus.train.init_from = ckpt;
  try {
    train_model(plus, quiet(dir.file("plus")));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("holds a 'oim' model"), std::string::npos) << e.what();
  }
  // A torchvision weight file is not a training checkpoint.
  EXPECT_THROW(load_checkpoint(test::fixture("resnet18.pth")), std::runtime_error);
  EXPECT_THROW(load_checkpoint(dir.file("missing.pt")), std::runtime_error);
}

TEST(Trainer, NaePlusStartsFromNaeWithTheSameMeanEmbedding) {
  TempDir dir;
  TrainOptions o = quiet(dir.file("nae"));
  o.stop_after = 2;
  train_model(tiny_config("nae"), o);
  const TrainedModel trained = load_trained_model(dir.file("nae") + "/last.pt", c10::Device(c10::kCPU));
  const auto nae = std::dynamic_pointer_cast<modeling::TwoStageModelImpl>(trained.model);
  ASSERT_TRUE(nae);

  config::Config plus_config = tiny_config("nae_plus");
  const auto plus = std::dynamic_pointer_cast<modeling::TwoStageModelImpl>(build_model(plus_config, nae->num_pids()));
  ASSERT_TRUE(plus);
  init_from_checkpoint(*plus, dir.file("nae") + "/last.pt");
  plus->eval();
  // Averaging NAE+'s per-pixel projection over the map gives NAE's projection x exactly
  // (1x1 conv, BN and the 2x bilinear downsampling of the C4 branch are all linear).
  torch::NoGradGuard no_grad;
  const at::Tensor res4 = at::rand({5, 256, 4, 4}), res5 = at::rand({5, 512, 2, 2});
  const at::Tensor x = nae->embedding_head()->forward(res4, res5);
  const at::Tensor pixel = plus->embedding_head()->forward(res4, res5);
  EXPECT_LT((pixel.mean({2, 3}) - x).abs().max().item<double>(), 1e-5);
  // The OIM memory and the rescaler carry over.
  EXPECT_TRUE(plus->reid_loss()->lut.equal(nae->reid_loss()->lut));
}

TEST(Trainer, ImageNetBackboneLoadsIntoTheTrunk) {
  const config::Config config = tiny_config("nae");
  const modeling::PersonSearchModel model = build_model(config, 4);
  model->load_backbone_weights(test::fixture("resnet18.pth"));
  const checkpoint::TensorMap file = checkpoint::load_tensors(test::fixture("resnet18.pth"));
  const checkpoint::TensorMap state = model_state(*model);
  EXPECT_TRUE(state.at("backbone.conv1.weight").equal(file.at("conv1.weight")));
  EXPECT_TRUE(state.at("backbone.layer3.1.bn2.running_var").equal(file.at("layer3.1.bn2.running_var")));
  EXPECT_TRUE(state.at("roi_heads.head.0.conv1.weight").equal(file.at("layer4.0.conv1.weight")));
  EXPECT_TRUE(state.at("roi_heads.head.1.bn2.bias").equal(file.at("layer4.1.bn2.bias")));
  // A ResNet-34 file does not fit a ResNet-18 trunk.
  EXPECT_THROW(model->load_backbone_weights(test::fixture("resnet34.pth")), std::runtime_error);
}

/// Parameters of mixed dtypes with gradients (one without), as clip_grad_norm meets them.
std::vector<at::Tensor> parameters_with_gradients(double scale) {
  std::vector<at::Tensor> params;
  for (auto [shape, dtype] : std::vector<std::pair<std::vector<int64_t>, at::ScalarType>>{
           {{7, 3}, at::kFloat}, {{5}, at::kFloat}, {{2, 2, 3}, at::kDouble}, {{4}, at::kFloat}}) {
    at::Tensor p = at::rand(shape, at::TensorOptions().dtype(dtype)).requires_grad_(true);
    if (params.size() != 3) p.mutable_grad() = (at::rand(shape, at::TensorOptions().dtype(dtype)) - 0.5) * scale;
    params.push_back(p);
  }
  return params;
}

TEST(StepChecks, ClipGradNormMatchesLibTorch) {
  // LibTorch's own clip_grad_norm_ (which returns a double) is the reference.
  for (double scale : {0.1, 10.0}) {
    for (double max_norm : {1.0, std::numeric_limits<double>::infinity()}) {
      at::manual_seed(5);
      std::vector<at::Tensor> ours = parameters_with_gradients(scale);
      at::manual_seed(5);
      std::vector<at::Tensor> reference = parameters_with_gradients(scale);
      const at::Tensor total = clip_grad_norm(ours, max_norm);
      const double expected = torch::nn::utils::clip_grad_norm_(reference, max_norm);
      EXPECT_EQ(total.dim(), 0);
      EXPECT_NEAR(total.item<double>(), expected, 1e-6 * expected) << "scale " << scale << " max " << max_norm;
      for (size_t i = 0; i < ours.size(); ++i) {
        if (!reference[i].grad().defined()) continue;
        EXPECT_LT((ours[i].grad() - reference[i].grad()).abs().max().item<double>(), 1e-6);
      }
    }
  }
  // Clipping happened in the large case: the clipped norm is the bound.
  std::vector<at::Tensor> params = parameters_with_gradients(10.0);
  clip_grad_norm(params, 1.0);
  EXPECT_NEAR(clip_grad_norm(params, std::numeric_limits<double>::infinity()).item<double>(), 1.0, 1e-5);
}

TEST(StepChecks, DivergenceWatchReportsTheFirstNonFiniteValue) {
  DivergenceWatch watch({"loss", "gradient norm"});
  watch.check();  // nothing observed
  watch.observe(at::scalar_tensor(2.5), 0, 0);
  watch.observe(at::scalar_tensor(1.0, at::kDouble), 1, 0);
  EXPECT_NO_THROW(watch.check());
  watch.observe(at::scalar_tensor(std::numeric_limits<float>::quiet_NaN()), 1, 6);
  watch.observe(at::scalar_tensor(std::numeric_limits<float>::infinity()), 0, 7);
  try {
    watch.check();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "training diverged: the gradient norm is nan at iteration 7 (the last checkpoint is kept)");
  }
}

TEST(Trainer, DivergenceStopsWithoutWritingDivergedWeights) {
  TempDir dir;
  config::Config config = tiny_config("oim", 6);
  config.train.lr = 1e30;  // the first step makes the weights huge; the second loss is not finite
  config.train.checkpoint_every = 1;
  try {
    train_model(config, quiet(dir.file("run")));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("training diverged: the loss is "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(" at iteration 2 "), std::string::npos) << e.what();
  }
  // The check runs before every checkpoint: last.pt is still iteration 1's, with finite weights.
  const CheckpointContents c = load_checkpoint(dir.file("run") + "/last.pt");
  EXPECT_EQ(c.iteration, 1);
  for (const auto& [name, tensor] : c.state)
    if (tensor.is_floating_point()) EXPECT_TRUE(tensor.isfinite().all().item<bool>()) << name;
}

}  // namespace
}  // namespace psearch::engine
