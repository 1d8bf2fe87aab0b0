#pragma once
// Tiny synthetic training scenes shared by the model tests (two-stage and one-stage).
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/tensor.h>

#include <vector>

#include "psearch/modeling/input/training_target.h"

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

}  // namespace psearch::modeling
