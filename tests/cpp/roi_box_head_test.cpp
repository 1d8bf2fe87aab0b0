// The Faster R-CNN box head (src/psearch/modeling/two_stage/roi_box_head.h) against
// torchvision's RoIHeads: tests/python/fixtures_roi_heads.py stores torchvision's sampled
// proposals, losses, detections and head outputs in <fixtures>/roi_heads.pt.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/box_ops.h"
#include "psearch/checkpoint/state_dict.h"
#include "psearch/config/config.h"
#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/backbone/resnet.h"
#include "psearch/modeling/two_stage/roi_box_head.h"
#include "test_util.h"

namespace pm = psearch::modeling;
namespace ck = psearch::checkpoint;
namespace nn = torch::nn;

namespace {

const ck::TensorMap& fixture() {
  static const ck::TensorMap map = ck::load_tensors(psearch::test::fixture("roi_heads.pt"));
  return map;
}

at::Tensor get(const std::string& name) {
  const auto it = fixture().find(name);
  if (it == fixture().end()) throw std::runtime_error("roi_heads.pt has no tensor '" + name + "'");
  return it->second;
}

std::vector<at::Tensor> list(const std::string& prefix) {
  std::vector<at::Tensor> out;
  while (fixture().count(prefix + std::to_string(out.size()))) out.push_back(get(prefix + std::to_string(out.size())));
  return out;
}

std::vector<std::array<int64_t, 2>> image_sizes(const std::string& name) {
  const at::Tensor s = get(name);
  std::vector<std::array<int64_t, 2>> out;
  for (int64_t i = 0; i < s.size(0); ++i) out.push_back({s[i][0].item<int64_t>(), s[i][1].item<int64_t>()});
  return out;
}

pm::RoIBoxHeadOptions options() {
  return pm::RoIBoxHeadOptions()
      .fg_iou_thresh(get("fg_iou_thresh").item<double>())
      .bg_iou_thresh(get("bg_iou_thresh").item<double>())
      .batch_size_per_image(get("batch_size_per_image").item<int64_t>())
      .positive_fraction(get("positive_fraction").item<double>())
      .score_thresh(get("score_thresh").item<double>())
      .nms_thresh(get("nms_thresh").item<double>());
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

std::vector<at::Tensor> person_labels(const std::vector<at::Tensor>& gt) {
  std::vector<at::Tensor> out;
  for (const auto& g : gt) out.push_back(at::ones({g.size(0)}, at::kLong));
  return out;
}

class SampleCase : public ::testing::TestWithParam<std::string> {};

TEST_P(SampleCase, SelectTrainingSamplesAndLossMatchTorchvision) {
  const std::string c = GetParam();
  const auto gt = list(c + ".gt.");
  at::manual_seed(get(c + ".seed").item<int64_t>());
  const pm::RoISamples s = pm::select_training_samples(list(c + ".proposals."), gt, person_labels(gt), options());
  const auto ref_props = list(c + ".out.proposals.");
  const auto ref_matched = list(c + ".out.matched_idxs.");
  const auto ref_labels = list(c + ".out.labels.");
  const auto ref_targets = list(c + ".out.regression_targets.");
  ASSERT_EQ(s.proposals.size(), ref_props.size());
  double worst = 0.0;
  for (size_t i = 0; i < ref_props.size(); ++i) {
    ASSERT_EQ(s.proposals[i].sizes(), ref_props[i].sizes()) << c << " image " << i;
    // The same sample is drawn, so proposals are copies: exact equality.
    EXPECT_TRUE(s.proposals[i].equal(ref_props[i])) << c << " image " << i;
    EXPECT_TRUE(s.matched_idxs[i].equal(ref_matched[i])) << c << " image " << i;
    EXPECT_TRUE(s.labels[i].equal(ref_labels[i])) << c << " image " << i;
    worst = std::max(worst, max_abs_diff(s.regression_targets[i], ref_targets[i]));
  }
  EXPECT_EQ(worst, 0.0) << c;
  std::cout << "[ roi_heads parity ] " << c << ": max |regression target error| = " << worst << "\n";

  const auto losses = pm::fastrcnn_loss(get(c + ".class_logits"), get(c + ".box_regression"), at::cat(s.labels),
                                        at::cat(s.regression_targets));
  const double dc = std::abs(losses.at("loss_classifier").item<double>() - get(c + ".loss_classifier").item<double>());
  const double db = std::abs(losses.at("loss_box_reg").item<double>() - get(c + ".loss_box_reg").item<double>());
  EXPECT_LE(dc, 1e-6) << c;
  EXPECT_LE(db, 1e-6) << c;
  std::cout << "[ roi_heads parity ] " << c << ": |loss_classifier error| = " << dc << ", |loss_box_reg error| = " << db
            << "\n";
}

INSTANTIATE_TEST_SUITE_P(RoIBoxHead, SampleCase, ::testing::Values("sampled", "one_empty", "no_gt"));

TEST(RoIBoxHead, NoGroundTruthGivesZeroBoxLossAndPositiveClassLoss) {
  // mmdetection's standard head test: with no ground truth everything sampled is background.
  at::manual_seed(0);
  const std::vector<at::Tensor> props = {at::rand({50, 2}) * 100, at::rand({30, 2}) * 100};
  std::vector<at::Tensor> proposals;
  for (const auto& p : props) proposals.push_back(at::cat({p, p + 20}, 1));
  const std::vector<at::Tensor> gt = {at::zeros({0, 4}), at::zeros({0, 4})};
  const auto s = pm::select_training_samples(proposals, gt, person_labels(gt), pm::RoIBoxHeadOptions());
  const at::Tensor labels = at::cat(s.labels);
  EXPECT_EQ((labels != 0).sum().item<int64_t>(), 0);
  const int64_t n = labels.size(0);
  const at::Tensor logits = at::randn({n, 2}).requires_grad_();
  const at::Tensor deltas = at::randn({n, 8}).requires_grad_();
  const auto losses = pm::fastrcnn_loss(logits, deltas, labels, at::cat(s.regression_targets));
  EXPECT_EQ(losses.at("loss_box_reg").item<double>(), 0.0);
  EXPECT_GT(losses.at("loss_classifier").item<double>(), 0.0);
  (losses.at("loss_box_reg") + losses.at("loss_classifier")).backward();
  ASSERT_TRUE(deltas.grad().defined());
  EXPECT_EQ(deltas.grad().abs().sum().item<double>(), 0.0);
}

TEST(RoIBoxHead, BackgroundLowThresholdIgnoresFarProposals) {
  // gt [0, 0, 10, 10]; proposals with IoU 1 (the gt itself), 0.25, 0.04 and 0.
  const at::Tensor gt = at::tensor({0.f, 0.f, 10.f, 10.f}).view({1, 4});
  const at::Tensor props = at::tensor({0.f, 0.f, 10.f, 2.5f,  0.f, 0.f, 2.f, 2.f,  50.f, 50.f, 60.f, 60.f}).view({3, 4});
  const auto run = [&](double lo) {
    at::manual_seed(0);
    const auto s = pm::select_training_samples({props}, {gt}, person_labels({gt}),
                                               pm::RoIBoxHeadOptions().batch_size_per_image(100).bg_iou_thresh_lo(lo));
    return s.labels[0];
  };
  EXPECT_TRUE(run(0.0).equal(at::tensor({0, 0, 0, 1}, at::kLong)));  // everything sampled
  // lo 0.1: only the 0.25 proposal stays background; the gt box itself is the positive.
  EXPECT_TRUE(run(0.1).equal(at::tensor({0, 1}, at::kLong)));
}

TEST(RoIBoxHead, OptionsFromConfig) {
  psearch::config::RoiHeadsConfig c;
  const auto o = pm::roi_box_head_options_from_config(c);
  EXPECT_EQ(o.fg_iou_thresh(), c.fg_iou_thresh);
  EXPECT_EQ(o.bg_iou_thresh(), c.bg_iou_thresh_hi);
  EXPECT_EQ(o.bg_iou_thresh_lo(), c.bg_iou_thresh_lo);
  EXPECT_EQ(o.batch_size_per_image(), c.batch_size_per_image);
  EXPECT_EQ(o.sampling_ratio(), c.sampling_ratio);
  EXPECT_EQ(o.pooler_resolution(), c.pooler_resolution);
}

TEST(RoIBoxHead, PostprocessDetectionsMatchesTorchvision) {
  const at::Tensor logits = get("post.class_logits");
  const at::Tensor deltas = get("post.box_regression");
  const auto proposals = list("post.proposals.");
  const auto sizes = image_sizes("post.image_sizes");
  for (const std::string key : {"all", "top5"}) {
    const auto dets = pm::postprocess_detections(logits, deltas, proposals, sizes,
                                                 options().detections_per_img(get("post." + key + ".detections_per_img").item<int64_t>()));
    const auto ref_boxes = list("post." + key + ".boxes.");
    const auto ref_scores = list("post." + key + ".scores.");
    const auto ref_labels = list("post." + key + ".labels.");
    ASSERT_EQ(dets.size(), ref_boxes.size());
    double worst_box = 0.0, worst_score = 0.0;
    const psearch::boxes::BoxCoder coder({10, 10, 5, 5});
    int64_t start = 0;
    for (size_t i = 0; i < dets.size(); ++i) {
      ASSERT_EQ(dets[i].boxes.sizes(), ref_boxes[i].sizes()) << key << " image " << i;
      worst_box = std::max(worst_box, max_abs_diff(dets[i].boxes, ref_boxes[i]));
      worst_score = std::max(worst_score, max_abs_diff(dets[i].scores, ref_scores[i]));
      EXPECT_TRUE(dets[i].labels.equal(ref_labels[i])) << key << " image " << i;
      // proposal[] names the row each detection was decoded from.
      const at::Tensor rows = dets[i].proposal + start;
      const at::Tensor own = deltas.index_select(0, rows).narrow(1, 4, 4);
      const at::Tensor again = psearch::boxes::clip_boxes_to_image(
          coder.decode_single(own, proposals[i].index_select(0, dets[i].proposal)), sizes[i]);
      EXPECT_LE(max_abs_diff(again, dets[i].boxes), 0.0) << key << " image " << i;
      start += proposals[i].size(0);
    }
    EXPECT_LE(worst_box, 1e-4) << key;
    EXPECT_LE(worst_score, 1e-6) << key;
    std::cout << "[ roi_heads parity ] postprocess " << key << ": max |box error| = " << worst_box
              << " px, max |score error| = " << worst_score << "\n";
  }
}

TEST(RoIBoxHead, ResNet50Conv5HeadGives2048Features) {
  // The real C4 layout: layer4 of ResNet-50 on 14x14 RoIs of a 1024-channel stride-16 map.
  at::manual_seed(0);
  pm::ResNet resnet(pm::ResNetOptions().last_stage("C4"));
  pm::RoIBoxHead head(resnet->layer(4), resnet->channels("C5"));
  head->eval();
  const at::Tensor c4 = at::randn({2, 1024, 8, 12});
  const std::vector<at::Tensor> props = {at::tensor({10.f, 10.f, 60.f, 120.f}).view({1, 4}),
                                         at::tensor({0.f, 0.f, 30.f, 40.f, 100.f, 20.f, 180.f, 120.f}).view({2, 4})};
  EXPECT_EQ(head->pool(c4, props).sizes(), (std::vector<int64_t>{3, 1024, 14, 14}));
  const auto out = head->forward(c4, props);
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{3, 2048}));
  EXPECT_EQ(out.class_logits.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(out.box_regression.sizes(), (std::vector<int64_t>{3, 8}));
  EXPECT_TRUE(head->named_parameters().contains("head.0.conv1.weight"));
  EXPECT_TRUE(head->named_parameters().contains("cls_score.weight"));
  EXPECT_TRUE(head->named_parameters().contains("bbox_pred.bias"));
}

TEST(RoIBoxHead, C4HeadMatchesTorchvisionPoolerAndPredictor) {
  const pm::RoIBoxHeadOptions opts;  // 14x14, 1/16, sampling_ratio 0, aligned false
  nn::Sequential conv5(nn::Conv2d(nn::Conv2dOptions(64, 96, 3).stride(2).padding(1)), nn::ReLU());
  pm::RoIBoxHead head(conv5, 96, opts);
  ck::TensorMap state;
  const std::string prefix = "head.state.";
  for (const auto& [k, v] : fixture()) {
    if (k.rfind(prefix, 0) == 0) state[k.substr(prefix.size())] = v;
  }
  ck::load_state_dict(*head, state, ck::Strictness::kStrict, "roi_heads.pt");
  const auto proposals = list("head.proposals.");
  const at::Tensor features = get("head.features");
  const double dp = max_abs_diff(head->pool(features, proposals), get("head.pooled"));
  const pm::RoIBoxHeadOutput out = head->forward(features, proposals);
  const double df = max_abs_diff(out.features, get("head.box_features"));
  const double dc = max_abs_diff(out.class_logits, get("head.class_logits"));
  const double db = max_abs_diff(out.box_regression, get("head.box_regression"));
  EXPECT_LE(dp, 1e-6);
  EXPECT_LE(df, 1e-5);
  EXPECT_LE(dc, 1e-5);
  EXPECT_LE(db, 1e-5);
  std::cout << "[ roi_heads parity ] head: pooled " << dp << ", features " << df << ", logits " << dc << ", deltas "
            << db << "\n";
}

}  // namespace
