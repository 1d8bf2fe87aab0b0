// Losses (src/psearch/modeling/losses) against hand-computed values, finite differences and
// the numpy / torch oracle values that tests/python/fixtures_losses.py stores in
// <fixtures>/losses.pt.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/losses/nae_loss.h"
#include "psearch/modeling/losses/nae_plus.h"
#include "psearch/modeling/losses/oim_loss.h"
#include "test_util.h"

namespace pm = psearch::modeling;

namespace {

// ---------------------------------------------------------------------------------------
// Helpers

const psearch::checkpoint::TensorMap& fixtures() {
  static const psearch::checkpoint::TensorMap m =
      psearch::checkpoint::load_tensors(psearch::test::fixture("losses.pt"));
  return m;
}

at::Tensor fx(const std::string& key) {
  const auto& m = fixtures();
  const auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error("losses.pt has no key " + key);
  return it->second;
}

int64_t fx_int(const std::string& key) { return fx(key).item().toLong(); }
double fx_double(const std::string& key) { return fx(key).item().toDouble(); }

double max_abs_err(const at::Tensor& got, const at::Tensor& want) {
  if (got.numel() == 0 && want.numel() == 0) return 0.0;
  return (got.detach().to(at::kCPU, at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
}

::testing::AssertionResult close(const at::Tensor& got, const at::Tensor& want, double tol) {
  if (got.sizes() != want.sizes()) {
    return ::testing::AssertionFailure() << "shape " << got.sizes() << " vs " << want.sizes();
  }
  const double err = max_abs_err(got, want);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |err| = " << err << " > " << tol;
}

// Logs the error against the oracle so that test output records it.
void report(const std::string& what, double err, const std::string& oracle = "numpy") {
  std::cout << "[ oracle   ] " << what << ": max |err| vs " << oracle << " = " << err << "\n";
}

at::Tensor dbl(std::vector<double> values) { return at::tensor(values, at::kDouble); }
at::Tensor lng(std::vector<int64_t> values) { return at::tensor(values, at::kLong); }

// An OIM module set to the fixture's initial memory, in the given dtype.
pm::OIMLoss fixture_oim(at::ScalarType dtype) {
  pm::OIMLoss oim(pm::OIMLossOptions(fx_int("oim.num_pids"))
                      .num_features(fx_int("oim.num_features"))
                      .num_cq_size(fx_int("oim.num_cq_size"))
                      .oim_momentum(fx_double("oim.momentum"))
                      .oim_scalar(fx_double("oim.scalar")));
  oim->to(dtype);
  oim->lut.copy_(fx("oim.lut0"));
  oim->cq.copy_(fx("oim.cq0"));
  oim->header_cq.fill_(fx_int("oim.header0"));
  oim->train();
  return oim;
}

// Runs the fixture's OIM steps, checking every output; returns the largest error seen on
// loss, gradient and memory.
double run_oim_steps(at::ScalarType dtype, double tol) {
  pm::OIMLoss oim = fixture_oim(dtype);
  double worst = 0.0;
  for (int64_t s = 1; s <= fx_int("oim.steps"); ++s) {
    const std::string key = "oim.step" + std::to_string(s) + ".";
    SCOPED_TRACE(key);
    // A copy: requires_grad_ on the fixture tensor itself would leak into other tests.
    const at::Tensor x = fx(key + "features").to(dtype).clone().requires_grad_(true);
    const at::Tensor loss = oim->forward(x, fx(key + "labels"));
    loss.backward();
    EXPECT_TRUE(close(loss, fx(key + "loss"), tol));
    EXPECT_TRUE(close(x.grad(), fx(key + "grad"), tol));
    EXPECT_TRUE(close(oim->lut, fx(key + "lut"), tol));
    EXPECT_TRUE(close(oim->cq, fx(key + "cq"), tol));
    EXPECT_EQ(oim->queue_header(), fx_int(key + "header"));
    worst = std::max(
        {worst, max_abs_err(loss, fx(key + "loss")), max_abs_err(x.grad(), fx(key + "grad")),
         max_abs_err(oim->lut, fx(key + "lut")), max_abs_err(oim->cq, fx(key + "cq"))});
  }
  return worst;
}

// ---------------------------------------------------------------------------------------
// OIM

TEST(OimLoss, MatchesNumpyOverThreeStepsInFloat64) {
  const double err = run_oim_steps(at::kDouble, 1e-12);
  report("OIM float64 (loss, grad, lut, cq; 3 steps)", err);
}

TEST(OimLoss, MatchesNumpyOverThreeStepsInFloat32) {
  const double err = run_oim_steps(at::kFloat, 2e-5);
  report("OIM float32 (loss, grad, lut, cq; 3 steps)", err);
}

TEST(OimLoss, NoLabeledPersonGivesExactlyZeroLossAndGradient) {
  pm::OIMLoss oim(pm::OIMLossOptions(4).num_features(3).num_cq_size(2));
  oim->lut.copy_(at::randn({4, 3}));
  oim->cq.copy_(at::randn({2, 3}));
  oim->train();
  const at::Tensor x = at::randn({5, 3}).requires_grad_(true);
  const at::Tensor loss = oim->forward(x, lng({-1, -2, -1, -7, -2}));
  ASSERT_EQ(loss.dim(), 0);
  EXPECT_EQ(loss.item<float>(), 0.0f);
  EXPECT_TRUE(at::isfinite(loss).item<bool>());
  loss.backward();  // still part of the graph: the trainer may sum it with other terms
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::equal(x.grad(), at::zeros_like(x)));
  // The two unlabeled persons still entered the queue (rows 0 then 1, pointer back to 0).
  EXPECT_TRUE(at::equal(oim->cq[0], x[0].detach()));
  EXPECT_TRUE(at::equal(oim->cq[1], x[2].detach()));
  EXPECT_EQ(oim->queue_header(), 0);

  // Also with an empty batch.
  const at::Tensor empty = at::zeros({0, 3}).requires_grad_(true);
  const at::Tensor none = oim->forward(empty, at::zeros({0}, at::kLong));
  EXPECT_EQ(none.item<float>(), 0.0f);
}

TEST(OimLoss, HandComputedTwoIdentities) {
  // lut rows e0, e1; no queue; scalar 2; one sample x = e0 with label 0:
  // logits [2, 0], loss = -log(e^2 / (e^2 + 1)) = log(1 + e^-2).
  // d loss / d x = 2 * ((p0 - 1) e0 + p1 e1) with p1 = 1 / (1 + e^2).
  pm::OIMLoss oim(pm::OIMLossOptions(2).num_features(2).num_cq_size(0).oim_scalar(2.0));
  oim->to(at::kDouble);
  oim->lut.copy_(dbl({1, 0, 0, 1}).view({2, 2}));
  oim->train();
  const at::Tensor x = dbl({1, 0}).view({1, 2}).requires_grad_(true);
  const at::Tensor loss = oim->forward(x, lng({0}));
  loss.backward();
  const double p1 = 1.0 / (1.0 + std::exp(2.0));
  EXPECT_NEAR(loss.item<double>(), std::log1p(std::exp(-2.0)), 1e-15);
  EXPECT_TRUE(close(x.grad(), dbl({-2.0 * p1, 2.0 * p1}).view({1, 2}), 1e-15));
  // momentum 0.5: lut[0] = normalize(0.5 e0 + 0.5 e0) = e0; lut[1] untouched.
  EXPECT_TRUE(close(oim->lut, dbl({1, 0, 0, 1}).view({2, 2}), 1e-15));
}

TEST(OimLoss, GradientMatchesFiniteDifferencesInFloat64) {
  // Central differences of the loss (eval mode: the memory stays fixed) against autograd,
  // with unnormalised features so that no special structure helps.
  pm::OIMLoss oim(pm::OIMLossOptions(5).num_features(4).num_cq_size(3).oim_scalar(3.0));
  oim->to(at::kDouble);
  oim->lut.copy_(at::randn({5, 4}, at::kDouble));
  oim->cq.copy_(at::randn({3, 4}, at::kDouble));
  oim->eval();
  const at::Tensor labels = lng({3, -1, 0, -2, 3, 4});
  const at::Tensor x0 = at::randn({6, 4}, at::kDouble);
  const at::Tensor x = x0.clone().requires_grad_(true);
  oim->forward(x, labels).backward();

  at::Tensor numeric = at::zeros_like(x0);
  const double h = 1e-6;
  at::NoGradGuard no_grad;
  for (int64_t i = 0; i < x0.size(0); ++i) {
    for (int64_t j = 0; j < x0.size(1); ++j) {
      at::Tensor plus = x0.clone(), minus = x0.clone();
      plus[i][j] += h;
      minus[i][j] -= h;
      const double diff =
          oim->forward(plus, labels).item<double>() - oim->forward(minus, labels).item<double>();
      numeric[i][j] = diff / (2 * h);
    }
  }
  const double err = max_abs_err(x.grad(), numeric);
  std::cout << "[ oracle   ] OIM gradient: max |autograd - central difference| = " << err << "\n";
  EXPECT_LT(err, 1e-7);
  EXPECT_TRUE(at::equal(x.grad()[1], at::zeros({4}, at::kDouble)));  // unlabeled: no gradient
  EXPECT_TRUE(at::equal(x.grad()[3], at::zeros({4}, at::kDouble)));  // background: none either
}

TEST(OimLoss, EvalModeLeavesTheMemoryAlone) {
  pm::OIMLoss oim(pm::OIMLossOptions(3).num_features(2).num_cq_size(2));
  oim->eval();
  oim->forward(at::randn({3, 2}), lng({0, -1, 2}));
  EXPECT_TRUE(at::equal(oim->lut, at::zeros({3, 2})));
  EXPECT_TRUE(at::equal(oim->cq, at::zeros({2, 2})));
  EXPECT_EQ(oim->queue_header(), 0);
}

TEST(OimLoss, MemoryIsInBuffersAndResumesExactly) {
  pm::OIMLoss a(pm::OIMLossOptions(4).num_features(3).num_cq_size(3));
  std::set<std::string> names;
  for (const auto& item : a->named_buffers()) names.insert(item.key());
  EXPECT_EQ(names, (std::set<std::string>{"lut", "cq", "header_cq"}));
  EXPECT_TRUE(a->named_parameters().is_empty());
  EXPECT_EQ(a->header_cq.scalar_type(), at::kLong);

  // One step, then "checkpoint" the buffers into a fresh module; the next step must be
  // identical in both.
  a->train();
  a->forward(at::randn({4, 3}), lng({1, -1, -1, 3}));
  pm::OIMLoss b(pm::OIMLossOptions(4).num_features(3).num_cq_size(3));
  b->train();
  for (const auto& item : a->named_buffers()) b->named_buffers()[item.key()].copy_(item.value());
  const at::Tensor x = at::randn({5, 3});
  const at::Tensor labels = lng({2, -1, -1, -1, 1});
  EXPECT_TRUE(at::equal(a->forward(x, labels), b->forward(x, labels)));
  EXPECT_TRUE(at::equal(a->lut, b->lut));
  EXPECT_TRUE(at::equal(a->cq, b->cq));
  EXPECT_EQ(a->queue_header(), b->queue_header());
  EXPECT_EQ(a->queue_header(), 2);  // 2 + 3 pushes, modulo 3
}

TEST(OimLoss, RejectsBadLabels) {
  pm::OIMLoss oim(pm::OIMLossOptions(3).num_features(2).num_cq_size(2));
  oim->train();
  EXPECT_THROW(oim->forward(at::randn({2, 2}), lng({0, 3})), c10::Error);  // >= num_pids
  EXPECT_THROW(oim->forward(at::randn({2, 2}), lng({0})), c10::Error);     // length
  EXPECT_THROW(oim->forward(at::randn({2, 2}), at::zeros({2}, at::kInt)), c10::Error);
  EXPECT_THROW(oim->forward(at::randn({2, 5}), lng({0, 1})), c10::Error);  // dimension
  EXPECT_TRUE(at::equal(oim->lut, at::zeros({3, 2})));                     // nothing half-applied
}

// ---------------------------------------------------------------------------------------
// NAE

TEST(NormAwareEmbedding, MatchesNumpyAndTorchBatchNorm) {
  pm::NormAwareEmbedding nae;
  nae->to(at::kDouble);
  {
    at::NoGradGuard no_grad;
    nae->rescaler->weight.fill_(fx_double("nae.gamma"));
    nae->rescaler->bias.fill_(fx_double("nae.beta"));
  }
  nae->train();
  const at::Tensor x = fx("nae.x").clone().requires_grad_(true);
  const pm::NormAwareOutput out = nae->forward(x);
  const at::Tensor loss = pm::nae_detection_loss(out.logits, fx("nae.labels"));
  loss.backward();

  EXPECT_TRUE(close(out.logits, fx("nae.logits"), 1e-12));
  EXPECT_TRUE(close(out.prob, fx("nae.prob"), 1e-12));
  EXPECT_TRUE(close(out.angle, fx("nae.angle"), 1e-12));
  EXPECT_TRUE(close(pm::norm_aware_embedding(out.angle, out.prob), fx("nae.embedding"), 1e-12));
  EXPECT_TRUE(close(loss, fx("nae.loss"), 1e-12));
  EXPECT_TRUE(close(x.grad(), fx("nae.grad_x"), 1e-12));
  EXPECT_TRUE(close(nae->rescaler->running_mean, fx("nae.running_mean").view({1}), 1e-12));
  EXPECT_TRUE(close(nae->rescaler->running_var, fx("nae.running_var").view({1}), 1e-12));
  EXPECT_EQ(nae->rescaler->num_batches_tracked.item().toLong(), 1);
  report("NAE logits", max_abs_err(out.logits, fx("nae.logits")));
  report("NAE detection loss (Eq. 5)", max_abs_err(loss, fx("nae.loss")));
  report("NAE d loss / d x", max_abs_err(x.grad(), fx("nae.grad_x")), "torch autograd");

  nae->eval();  // running statistics now
  const pm::NormAwareOutput eval = nae->forward(fx("nae.x"));
  EXPECT_TRUE(close(eval.logits, fx("nae.eval_logits"), 1e-12));
  report("NAE eval-mode logits", max_abs_err(eval.logits, fx("nae.eval_logits")));
}

TEST(NormAwareEmbedding, StateDictNamesMatchTheOfficialRescaler) {
  pm::NormAwareEmbedding nae;
  std::set<std::string> names;
  for (const auto& item : nae->named_parameters()) names.insert(item.key());
  for (const auto& item : nae->named_buffers()) names.insert(item.key());
  EXPECT_EQ(names,
            (std::set<std::string>{"rescaler.weight", "rescaler.bias", "rescaler.running_mean",
                                   "rescaler.running_var", "rescaler.num_batches_tracked"}));
  EXPECT_EQ(nae->rescaler->weight.item<float>(), 1.0f);
  EXPECT_EQ(nae->rescaler->bias.item<float>(), 0.0f);
}

TEST(NaeDetectionLoss, HandComputed) {
  // sigmoid(0) = 1/2 against 0: log 2. sigmoid(log 3) = 3/4 against 1: -log(3/4).
  const at::Tensor logits = dbl({0.0, std::log(3.0)});
  const double want = (std::log(2.0) - std::log(0.75)) / 2.0;
  EXPECT_NEAR(pm::nae_detection_loss(logits, lng({0, 1})).item<double>(), want, 1e-15);
  const at::Tensor as_bool = at::tensor(std::vector<int64_t>{0, 1}, at::kLong).to(at::kBool);
  EXPECT_NEAR(pm::nae_detection_loss(logits, as_bool).item<double>(), want, 1e-15);
  // Large logits stay finite (computed from logits, not from probabilities).
  const at::Tensor big = pm::nae_detection_loss(dbl({200.0, -200.0}), lng({0, 1}));
  EXPECT_NEAR(big.item<double>(), 200.0, 1e-9);
  // No RoI: 0, not NaN.
  const at::Tensor empty = at::zeros({0}, at::kDouble).requires_grad_(true);
  const at::Tensor none = pm::nae_detection_loss(empty, at::zeros({0}, at::kLong));
  EXPECT_EQ(none.item<double>(), 0.0);
  EXPECT_THROW(pm::nae_detection_loss(logits, lng({1})), c10::Error);
}

TEST(NormRescaler, ASingleValueInTrainingUsesTheRunningStatistics) {
  // One value has no batch variance (torch's BatchNorm refuses it); it is normalised with
  // the running statistics, which stay as they were.
  pm::NormAwareEmbedding nae;
  const at::Tensor x = at::randn({1, 8});
  nae->eval();
  const at::Tensor expected = nae->forward(x).prob;
  nae->train();
  const at::Tensor mean = nae->rescaler->running_mean.clone(), var = nae->rescaler->running_var.clone();
  EXPECT_TRUE(at::allclose(nae->forward(x).prob, expected));
  EXPECT_TRUE(at::equal(nae->rescaler->running_mean, mean));
  EXPECT_TRUE(at::equal(nae->rescaler->running_var, var));
}

// ---------------------------------------------------------------------------------------
// NAE+

TEST(NaePlusPixelLabels, HandComputed) {
  // RoI 14 x 14, box covers x in [0, 7]: the official raster sets columns 0..7 (end ceiled
  // and inclusive). k = 7 samples source columns 2i + 0.5, i.e. the pairs (2i, 2i + 1) with
  // weight 1/2 each: columns 0..3 are 1, 4..6 are 0.
  // RoI 3.5 wide (raster 4 px), box x in [0, 1]: columns 0, 1 set. Source x of sample i is
  // (i + 0.5) * 4/7 - 0.5 clamped at 0: 0, 0.357, 0.929, 1.5, 2.07, ... giving profile
  // 1, 1, 1, 0.5, 0, 0, 0. Full height in both.
  const at::Tensor proposals =
      at::tensor(std::vector<float>{0, 0, 14, 14, 0, 0, 3.5, 7}).view({2, 4});
  const at::Tensor gt = at::tensor(std::vector<float>{0, 0, 7, 14, 0, 0, 1, 7}).view({2, 4});
  const at::Tensor labels = pm::nae_plus_pixel_labels(proposals, gt, 7);
  ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{2, 1, 7, 7}));
  const at::Tensor row0 = at::tensor(std::vector<float>{1, 1, 1, 1, 0, 0, 0});
  const at::Tensor row1 = at::tensor(std::vector<float>{1, 1, 1, 0.5, 0, 0, 0});
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_TRUE(close(labels[0][0][i], row0, 1e-6)) << "row " << i;
    EXPECT_TRUE(close(labels[1][0][i], row1, 1e-6)) << "row " << i;
  }
  // No overlap, and a degenerate RoI: all zeros.
  const at::Tensor apart = pm::nae_plus_pixel_labels(
      at::tensor(std::vector<float>{50, 50, 60, 60, 5, 5, 5, 9}).view({2, 4}),
      at::tensor(std::vector<float>{0, 0, 10, 10, 0, 0, 9, 9}).view({2, 4}), 7);
  EXPECT_TRUE(at::equal(apart, at::zeros({2, 1, 7, 7})));
}

TEST(NaePlusPixelLabels, MatchesTorchInterpolateOfTheOfficialRaster) {
  const at::Tensor labels =
      pm::nae_plus_pixel_labels(fx("naeplus.proposals"), fx("naeplus.gt"), fx_int("naeplus.k"));
  EXPECT_EQ(labels.scalar_type(), at::kFloat);
  EXPECT_TRUE(close(labels, fx("naeplus.labels"), 1e-6));
  report("NAE+ pixel labels (47 RoIs)", max_abs_err(labels, fx("naeplus.labels")),
         "official raster + F.interpolate");
  // Also for double boxes, computed in double: the float32 oracle's own rounding (source
  // coordinates up to ~150 px in float) bounds the agreement here.
  const at::Tensor from_double = pm::nae_plus_pixel_labels(fx("naeplus.proposals").to(at::kDouble),
                                                           fx("naeplus.gt").to(at::kDouble), 7);
  EXPECT_EQ(from_double.scalar_type(), at::kDouble);
  EXPECT_TRUE(close(from_double, fx("naeplus.labels"), 2e-5));
}

TEST(NaePlusDetectionLoss, MatchesNumpyEq6) {
  const at::Tensor logits = fx("naeplus.loss_logits").clone().requires_grad_(true);
  const at::Tensor loss = pm::nae_plus_detection_loss(logits, fx("naeplus.loss_labels"));
  loss.backward();
  EXPECT_TRUE(close(loss, fx("naeplus.loss"), 1e-12));
  EXPECT_TRUE(close(logits.grad(), fx("naeplus.loss_grad"), 1e-12));
  report("NAE+ loss (Eq. 6)", max_abs_err(loss, fx("naeplus.loss")));
  report("NAE+ d loss / d logits", max_abs_err(logits.grad(), fx("naeplus.loss_grad")));
  const at::Tensor none =
      pm::nae_plus_detection_loss(at::zeros({0, 1, 7, 7}), at::zeros({0, 1, 7, 7}));
  EXPECT_EQ(none.item<float>(), 0.0f);
}

TEST(NaePlusScores, MeanProbabilityOverThePerImageMaximum) {
  const at::Tensor counts = fx("naeplus.score_counts");
  const std::vector<int64_t> per_image = {counts[0].item<int64_t>(), counts[1].item<int64_t>()};
  const at::Tensor scores = pm::nae_plus_scores(fx("naeplus.score_logits"), per_image);
  EXPECT_TRUE(close(scores, fx("naeplus.scores"), 1e-12));
  EXPECT_EQ(scores.narrow(0, 0, per_image[0]).max().item<double>(), 1.0);  // each image's best
  EXPECT_EQ(scores.narrow(0, per_image[0], per_image[1]).max().item<double>(), 1.0);
  const at::Tensor emb = pm::nae_plus_embedding(fx("naeplus.score_pooled"), scores);
  EXPECT_TRUE(close(emb, fx("naeplus.score_embedding"), 1e-12));
  report("NAE+ inference scores", max_abs_err(scores, fx("naeplus.scores")));
  EXPECT_THROW(pm::nae_plus_scores(fx("naeplus.score_logits"), {3, 3}), c10::Error);
}

TEST(PixelWiseNormAwareEmbedding, MatchesNumpyBatchNorm2d) {
  pm::PixelWiseNormAwareEmbedding head;
  head->to(at::kDouble);
  {
    at::NoGradGuard no_grad;
    head->rescaler->weight.fill_(fx_double("naeplus.head_gamma"));
    head->rescaler->bias.fill_(fx_double("naeplus.head_beta"));
  }
  head->train();
  const pm::PixelNormAwareOutput out = head->forward(fx("naeplus.head_x"));
  EXPECT_TRUE(close(out.logits, fx("naeplus.head_logits"), 1e-12));
  EXPECT_TRUE(close(out.prob, fx("naeplus.head_prob"), 1e-12));
  EXPECT_TRUE(close(out.pooled, fx("naeplus.head_pooled"), 1e-12));
  EXPECT_TRUE(
      close(head->rescaler->running_mean, fx("naeplus.head_running_mean").view({1}), 1e-12));
  EXPECT_TRUE(close(head->rescaler->running_var, fx("naeplus.head_running_var").view({1}), 1e-12));
  report("NAE+ pixel head pooled embedding", max_abs_err(out.pooled, fx("naeplus.head_pooled")));
}

TEST(FcWeightToConv1x1, GivesTheSameMapAtEveryPixel) {
  const at::Tensor w = at::randn({6, 4}, at::kDouble);
  const at::Tensor bias = at::randn({6}, at::kDouble);
  const at::Tensor conv = pm::fc_weight_to_conv1x1(w);
  ASSERT_EQ(conv.sizes(), (std::vector<int64_t>{6, 4, 1, 1}));
  const at::Tensor x = at::randn({2, 4, 3, 5}, at::kDouble);
  const at::Tensor by_conv = at::conv2d(x, conv, bias);  // [2, 6, 3, 5]
  const at::Tensor by_fc = at::linear(x.permute({0, 2, 3, 1}), w, bias).permute({0, 3, 1, 2});
  EXPECT_TRUE(close(by_conv, by_fc, 1e-12));
  // A copy: changing it leaves the FC weight alone.
  conv.zero_();
  EXPECT_NE(w.abs().sum().item<double>(), 0.0);
  EXPECT_THROW(pm::fc_weight_to_conv1x1(at::randn({6})), c10::Error);
}

}  // namespace
