// RetinaNet (src/psearch/modeling/one_stage/retinanet.h) against torchvision's
// retinanet_resnet50_fpn with the same weights and images: tests/python/fixtures_retinanet.py
// stores torchvision's state_dict, pyramid, head outputs, anchors, detections and losses.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "psearch/checkpoint/torch_file.h"
#include "psearch/modeling/backbone/resnet.h"
#include "psearch/modeling/one_stage/retinanet.h"
#include "fixture_file.h"
#include "test_util.h"

namespace pm = psearch::modeling;
namespace ck = psearch::checkpoint;

namespace {

at::Tensor get(const std::string& key) {
  static const psearch::test::FixtureFile file("retinanet.pt");
  return file.get(key);
}

std::vector<at::Tensor> images() { return {get("image.0"), get("image.1")}; }

/// max |a - b| / max |b|.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

/// The torchvision model of the fixture, loaded from its state_dict file, in eval mode.
pm::RetinaNet loaded_model() {
  pm::RetinaNetOptions options;
  options.num_classes(get("num_classes").item<int64_t>());
  options.transform(pm::ImageTransformOptions()
                        .min_size(get("min_size").item<int64_t>())
                        .max_size(get("max_size").item<int64_t>()));
  pm::RetinaNet model(options);
  pm::load_torchvision_retinanet(*model, psearch::test::fixture("retinanet_resnet50_fpn.pth"));
  model->eval();
  return model;
}

TEST(RetinaNetParity, PyramidHeadAndAnchorsMatchTorchvision) {
  c10::NoGradGuard no_grad;
  pm::RetinaNet model = loaded_model();
  const pm::TransformedBatch batch = model->transform()(images());
  const std::vector<at::Tensor> features = model->backbone()->forward(batch.images);
  ASSERT_EQ(features.size(), 5u);
  double worst = 0;
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor expected = get("features." + std::to_string(l));
    ASSERT_EQ(features[l].sizes(), expected.sizes()) << "P" << l + 3;
    worst = std::max(worst, relative_error(features[l], expected));
  }
  const pm::DensePredictions p = model->predict(features);
  const double cls = relative_error(p.cls_logits, get("cls_logits"));
  const double reg = relative_error(p.box_deltas, get("bbox_regression"));
  std::cout << "[parity] RetinaNet max relative error: pyramid " << worst << ", cls logits " << cls
            << ", box deltas " << reg << "\n";
  EXPECT_LT(worst, 1e-4);
  EXPECT_LT(cls, 1e-4);
  EXPECT_LT(reg, 1e-4);
  EXPECT_TRUE(at::equal(model->detector().anchors(batch.sizes, features), get("anchors")));
}

/// Pairs each expected detection with an unused one of ours of the same label, every
/// coordinate within 0.01 px and |score difference| < 1e-5; returns how many found a partner and the largest box and
/// score differences among the pairs. (Random weights give many scores within float32
/// rounding of each other, so their order, and a few top-k / NMS decisions at the margin,
/// may differ from torchvision's without either being wrong.)
struct Pairing {
  int64_t matched = 0;
  double box_err = 0, score_err = 0;
};

Pairing pair_detections(const pm::LabeledDetections& ours, const at::Tensor& boxes, const at::Tensor& scores,
                        const at::Tensor& labels) {
  Pairing out;
  // [N, M]: the largest coordinate difference of each pair.
  const at::Tensor distance = (boxes.unsqueeze(1) - ours.boxes.unsqueeze(0)).abs().amax(2);
  std::vector<bool> used(static_cast<size_t>(ours.boxes.size(0)), false);
  for (int64_t i = 0; i < boxes.size(0); ++i) {
    int64_t best = -1;
    double best_distance = 0.01;
    for (int64_t j = 0; j < ours.boxes.size(0); ++j) {
      if (used[j] || ours.labels[j].item<int64_t>() != labels[i].item<int64_t>()) continue;
      if (std::abs(ours.scores[j].item<double>() - scores[i].item<double>()) >= 1e-5) continue;
      const double v = distance[i][j].item<double>();
      if (v < best_distance) best = j, best_distance = v;
    }
    if (best < 0) continue;
    used[best] = true;
    ++out.matched;
    out.box_err = std::max(out.box_err, (ours.boxes[best] - boxes[i]).abs().max().item<double>());
    out.score_err = std::max(out.score_err, std::abs(ours.scores[best].item<double>() - scores[i].item<double>()));
  }
  return out;
}

TEST(RetinaNetParity, DetectionsMatchTorchvision) {
  c10::NoGradGuard no_grad;
  pm::RetinaNet model = loaded_model();
  const std::vector<pm::LabeledDetections> dets = model->detect(images());
  ASSERT_EQ(dets.size(), 2u);
  for (size_t i = 0; i < dets.size(); ++i) {
    const std::string d = "det." + std::to_string(i) + ".";
    const at::Tensor boxes = get(d + "boxes");
    ASSERT_EQ(dets[i].boxes.sizes(), boxes.sizes()) << "image " << i;
    ASSERT_GT(boxes.size(0), 100) << "the fixture should exercise NMS and the detection limit";
    const Pairing p = pair_detections(dets[i], boxes, get(d + "scores"), get(d + "labels"));
    std::cout << "[parity] RetinaNet image " << i << ": " << p.matched << " of " << boxes.size(0)
              << " torchvision detections found (same label, box within 0.01 px, score within 1e-5); among them max |box "
                 "diff| "
              << p.box_err << " px, max |score diff| " << p.score_err << "\n";
    EXPECT_GE(p.matched, boxes.size(0) * 98 / 100) << "image " << i;
    EXPECT_LT(p.box_err, 1e-3);
    EXPECT_LT(p.score_err, 1e-5);
    // The top of the list, where scores are far apart, is in the same order.
    EXPECT_TRUE(at::allclose(dets[i].boxes.slice(0, 0, 5), boxes.slice(0, 0, 5), 0, 1e-3)) << "image " << i;
  }
}

TEST(RetinaNetParity, TrainingLossesMatchTorchvision) {
  pm::RetinaNet model = loaded_model();
  model->train();
  std::vector<at::Tensor> boxes, labels;
  for (int i = 0; i < 2; ++i) {
    boxes.push_back(get("train.gt." + std::to_string(i) + ".boxes"));
    labels.push_back(get("train.gt." + std::to_string(i) + ".labels"));
  }
  const auto losses = model->forward_train(images(), boxes, labels);
  const double cls = losses.at("loss_cls").item<double>(), expected_cls = get("train.loss_cls").item<double>();
  const double box = losses.at("loss_box_reg").item<double>(), expected_box = get("train.loss_box_reg").item<double>();
  std::cout << "[parity] RetinaNet losses: cls " << cls << " vs " << expected_cls << ", box " << box << " vs "
            << expected_box << "\n";
  EXPECT_NEAR(cls, expected_cls, 1e-4 * expected_cls);
  EXPECT_NEAR(box, expected_box, 1e-4 * expected_box);
  losses.at("loss").backward();
  const at::Tensor grad = model->named_parameters()["head.classification_head.cls_logits.bias"].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0);
}

TEST(RetinaNetFiles, ResNetFileIsNamedAsSuch) {
  pm::RetinaNet model(pm::RetinaNetOptions().backbone(
      pm::BackboneWithFPNOptions().resnet(pm::ResNetOptions().depth(18))));
  const std::string path = psearch::test::fixture("resnet18.pth");
  const std::string error = psearch::test::error_of([&] { pm::load_torchvision_retinanet(*model, path); });
  EXPECT_EQ(error, path + ": is a torchvision ResNet classifier checkpoint, not a torchvision RetinaNet checkpoint "
                          "(an ImageNet classifier file goes to model.backbone.weights, with the matching "
                          "model.backbone.arch)");
}

TEST(RetinaNetFiles, RetinaNetFileIsNamedWhereAResNetIsExpected) {
  pm::ResNet resnet(pm::ResNetOptions().depth(50));
  const std::string path = psearch::test::fixture("retinanet_resnet50_fpn.pth");
  const std::string error = psearch::test::error_of(
      [&] { pm::load_torchvision_resnet(*resnet, path, ck::Strictness::kStrict); });
  EXPECT_NE(error.find(path + ": is a torchvision RetinaNet checkpoint, not a torchvision ResNet classifier"),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

}  // namespace
