#pragma once
// Tiny synthetic training scenes shared by the model tests (two-stage and one-stage), and
// the overfit check every person-search model must pass on them.
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>

#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/sgd.h>

#include <cstdlib>
#include <iostream>
#include <vector>

#include "psearch/boxes/box_ops.h"
#include "psearch/modeling/input/training_target.h"
#include "psearch/modeling/person_search_model.h"

namespace psearch::modeling {

/// Four 96x128 scenes with two "persons" each: upright rectangles whose upper and lower
/// halves carry an identity's two colours, on a faint noise background. Identity k appears
/// in two scenes, at different places.
struct Scene {
  at::Tensor image;
  TrainingTarget target;
};

inline std::vector<Scene> tiny_scenes() {
  const float colors[4][2][3] = {{{0.9f, 0.1f, 0.1f}, {0.1f, 0.1f, 0.8f}},
                                 {{0.1f, 0.8f, 0.2f}, {0.9f, 0.9f, 0.1f}},
                                 {{0.9f, 0.9f, 0.9f}, {0.2f, 0.2f, 0.2f}},
                                 {{0.6f, 0.1f, 0.7f}, {0.1f, 0.7f, 0.7f}}};
  const int layout[4][2] = {{0, 1}, {2, 3}, {1, 2}, {3, 0}};
  const int xs[4][2] = {{10, 70}, {30, 90}, {5, 60}, {40, 95}};
  std::vector<Scene> scenes;
  at::manual_seed(7);
  for (int s = 0; s < 4; ++s) {
    at::Tensor img = 0.45 + 0.1 * at::rand({3, 96, 128});
    std::vector<float> boxes;
    std::vector<int64_t> pids;
    for (int p = 0; p < 2; ++p) {
      const int id = layout[s][p], x = xs[s][p], y = 20 + 10 * p, w = 22, h = 56;
      for (int c = 0; c < 3; ++c) {
        img[c].narrow(0, y, h / 2).narrow(1, x, w).fill_(colors[id][0][c]);
        img[c].narrow(0, y + h / 2, h / 2).narrow(1, x, w).fill_(colors[id][1][c]);
      }
      boxes.insert(boxes.end(), {float(x), float(y), float(x + w), float(y + h)});
      pids.push_back(id);
    }
    scenes.push_back({img, {at::tensor(boxes).view({-1, 4}), at::tensor(pids)}});
  }
  return scenes;
}

/// Trains `model` on the four tiny scenes, two per step, with SGD (momentum 0.9; `lr`, a
/// tenth of it for the last quarter; the global gradient norm clipped to `clip_grad_norm`
/// when > 0) for PSEARCH_OVERFIT_ITERS (200) iterations, then expects: the mean loss of the
/// last 10 steps below a tenth of the first 10; all persons but one found again (IoU >= 0.5);
/// and identity 0's query from scene 0 matching identity 0 first among scene 3's detections.
inline void expect_tiny_overfit(PersonSearchModelImpl& model, double lr, double clip_grad_norm = 0) {
  const auto scenes = tiny_scenes();
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
  model.train();
  double first = 0, last = 0;
  const char* iters_env = std::getenv("PSEARCH_OVERFIT_ITERS");
  const int iterations = iters_env ? std::atoi(iters_env) : 200;
  for (int it = 0; it < iterations; ++it) {
    if (it == iterations * 3 / 4) sgd.param_groups()[0].options().set_lr(lr / 10);
    const int a = (2 * it) % 4, b = (2 * it + 1) % 4;
    auto losses = model.forward_train({scenes[a].image, scenes[b].image}, {scenes[a].target, scenes[b].target});
    sgd.zero_grad();
    losses["loss"].backward();
    if (clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(model.parameters(), clip_grad_norm);
    sgd.step();
    const double total = losses["loss"].item<double>();
    if (it < 10) first += total / 10;
    if (it >= iterations - 10) last += total / 10;
    if (std::getenv("PSEARCH_DEBUG_OVERFIT") && it % 20 == 0) {
      for (auto& [k, v] : losses) std::cerr << k << "=" << v.item<double>() << " ";
      std::cerr << "\n";
    }
  }
  EXPECT_LT(last, 0.1 * first) << "total loss from " << first << " to " << last;

  model.eval();
  torch::NoGradGuard no_grad;
  int found = 0, total = 0;
  for (const auto& s : scenes) {
    const Detections d = model.detect({s.image}).front();
    for (int64_t g = 0; g < s.target.boxes.size(0); ++g, ++total) {
      if (d.boxes.size(0) == 0) continue;
      if (boxes::box_iou(s.target.boxes.narrow(0, g, 1), d.boxes).max().item<double>() >= 0.5) ++found;
    }
  }
  EXPECT_GE(found, total - 1) << found << " of " << total << " persons detected";

  // Identity 0 is in scenes 0 and 3: query from scene 0, its best match in scene 3.
  const at::Tensor q = model.embed({scenes[0].image}, {scenes[0].target.boxes.narrow(0, 0, 1)}).front();
  const Detections g = model.detect({scenes[3].image}).front();
  ASSERT_GT(g.boxes.size(0), 0);
  const int64_t best = g.features.matmul(q.t()).view(-1).argmax().item<int64_t>();
  const at::Tensor iou = boxes::box_iou(scenes[3].target.boxes, g.boxes.narrow(0, best, 1)).view(-1);
  EXPECT_EQ(iou.argmax().item<int64_t>(), 1) << "top match is not identity 0";
  EXPECT_GE(iou.max().item<double>(), 0.5);
}

}  // namespace psearch::modeling
