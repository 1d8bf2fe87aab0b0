// `psearch demo`: the end-to-end path of the library on a built-in synthetic scene,
// stage by stage: backbone (C4) -> anchors -> matcher/sampler -> box coder -> NMS ->
// RoIAlign -> conv5 head -> embeddings -> ranking of gallery boxes against a query box.
//
// Until the trained detectors exist (issue 4), proposals come from an oracle: anchors
// matched to the scene's ground truth. The backbone uses --weights when given and is
// otherwise randomly initialised, so the ranking shows the mechanics, not accuracy.
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <nlohmann/json.hpp>
#include <ATen/ops/arange.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <ATen/Context.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "psearch/boxes/anchor_generator.h"
#include "psearch/boxes/box_coder.h"
#include "psearch/boxes/box_ops.h"
#include "psearch/boxes/matcher.h"
#include "psearch/boxes/sampler.h"
#include "psearch/modeling/backbone/resnet.h"
#include "psearch/ops/ops.h"
#include "psearch/util/atomic_file.h"

namespace psearch::cli {
namespace {

struct DemoArgs {
  std::string weights;
  std::string output = "out/demo";
  std::string device = "cpu";
  int64_t seed = 0;
};

/// A person drawn as head, shirt and trousers; identity = its colours.
struct Person {
  int identity;
  float x, y, w, h;  // box in pixels
};

const float kColours[][2][3] = {  // {shirt, trousers} RGB in [0, 1] per identity
    {{0.85f, 0.10f, 0.10f}, {0.10f, 0.10f, 0.45f}}, {{0.10f, 0.60f, 0.20f}, {0.30f, 0.30f, 0.30f}},
    {{0.95f, 0.85f, 0.10f}, {0.05f, 0.05f, 0.05f}}, {{0.20f, 0.40f, 0.90f}, {0.60f, 0.45f, 0.25f}},
    {{0.60f, 0.20f, 0.70f}, {0.80f, 0.80f, 0.80f}}};

void paint(at::Tensor& image, const Person& p) {
  const auto fill = [&](float y0, float y1, const float* rgb, float x0, float x1) {
    for (int c = 0; c < 3; ++c)
      image[c].slice(0, static_cast<int64_t>(y0), static_cast<int64_t>(y1))
          .slice(1, static_cast<int64_t>(x0), static_cast<int64_t>(x1))
          .fill_(rgb[c]);
  };
  const float skin[3] = {0.90f, 0.72f, 0.60f};
  const float head = p.h / 7, torso = p.h * 3 / 7;
  fill(p.y, p.y + head, skin, p.x + p.w * 0.3f, p.x + p.w * 0.7f);
  fill(p.y + head, p.y + head + torso, kColours[p.identity][0], p.x, p.x + p.w);
  fill(p.y + head + torso, p.y + p.h, kColours[p.identity][1], p.x + p.w * 0.1f, p.x + p.w * 0.9f);
}

/// A frame: a lit, noisy background with the given persons.
at::Tensor make_frame(const std::vector<Person>& persons, float tint, int64_t h, int64_t w) {
  at::Tensor rows = at::arange(h, at::kFloat).div(h).view({1, h, 1});
  at::Tensor image = (0.35f + 0.3f * rows + tint).expand({3, h, w}).contiguous();
  image += at::randn({3, h, w}) * 0.03;
  for (const auto& p : persons) paint(image, p);
  return image.clamp(0, 1);
}

at::Tensor boxes_of(const std::vector<Person>& persons) {
  std::vector<float> v;
  for (const auto& p : persons) v.insert(v.end(), {p.x, p.y, p.x + p.w, p.y + p.h});
  return at::tensor(v).view({-1, 4});
}

void run_demo(const DemoArgs& args) {
  at::manual_seed(static_cast<uint64_t>(args.seed));
  const c10::Device device = parse_device(args.device);
  const int64_t H = 384, W = 640;
  const std::vector<Person> query_frame = {{0, 60, 120, 70, 200}, {1, 300, 100, 60, 180}, {2, 480, 140, 70, 190}};
  const std::vector<Person> gallery_frame = {
      {3, 40, 110, 64, 190}, {0, 250, 130, 70, 200}, {4, 380, 90, 66, 210}, {1, 520, 120, 60, 180}};
  const at::Tensor gt = boxes_of(gallery_frame);
  at::Tensor frames = at::stack({make_frame(query_frame, 0.0f, H, W), make_frame(gallery_frame, 0.08f, H, W)});
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  frames = ((frames - mean) / std).to(device);

  modeling::ResNet backbone(modeling::ResNetOptions().depth(50).last_stage("C4"));
  if (!args.weights.empty())
    modeling::load_torchvision_resnet(*backbone, args.weights, checkpoint::Strictness::kStrict);
  backbone->eval();
  backbone->to(device);
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, double>> timings;
  const auto timed = [&](const std::string& name, const std::function<void()>& fn) {
    timings.emplace_back(name, median_ms(fn, 1, 0, device));
  };

  at::Tensor c4;
  timed("backbone conv1..conv4", [&] { c4 = backbone->forward(frames).at("C4"); });

  // Oracle proposals: anchors matched to ground truth, regressed exactly onto it.
  boxes::AnchorGenerator anchor_gen({{32, 64, 128, 256, 512}}, {{0.5, 1.0, 2.0}});
  at::Tensor anchors, matches, proposals, scores, keep;
  int64_t sampled_pos = 0, sampled_neg = 0;
  timed("anchors + matcher + sampler", [&] {
    anchors = anchor_gen({H, W}, {{c4.size(2), c4.size(3)}});
    const at::Tensor iou = boxes::box_iou(gt, anchors);
    matches = boxes::Matcher(0.7, 0.3, true)(iou);
    const at::Tensor labels = (matches >= 0).to(at::kLong) - (matches == -2).to(at::kLong) * 2;
    auto [pos, neg] = boxes::BalancedPositiveNegativeSampler(256, 0.5)({labels.clamp_min(-1)});
    sampled_pos = pos[0].sum().item<int64_t>();
    sampled_neg = neg[0].sum().item<int64_t>();
  });
  timed("box coder + NMS", [&] {
    const at::Tensor positive = (matches >= 0).nonzero().squeeze(1);
    const at::Tensor matched_gt = gt.index_select(0, matches.index_select(0, positive));
    const at::Tensor anchor_boxes = anchors.index_select(0, positive);
    const boxes::BoxCoder coder({1.0, 1.0, 1.0, 1.0});
    const at::Tensor deltas = coder.encode_single(matched_gt, anchor_boxes);
    // Half-way regression keeps the proposals distinct, as a real RPN's would be.
    proposals = coder.decode_single(deltas * 0.5, anchor_boxes).view({-1, 4});
    scores = boxes::box_iou(proposals, gt).amax(1);
    keep = ops::nms(proposals, scores, 0.5);
    proposals = at::cat({gt, proposals.index_select(0, keep)});
  });

  at::Tensor similarity;
  timed("RoIAlign + conv5 head + embedding", [&] {
    const at::Tensor query_box = boxes_of({query_frame[0]});
    const at::Tensor rois = at::cat({at::cat({at::zeros({1, 1}), query_box}, 1),
                                     at::cat({at::full({proposals.size(0), 1}, 1.0f), proposals}, 1)})
                                .to(device);
    const at::Tensor pooled = ops::roi_align(c4, rois, 1.0 / 16, 14, 14, 0, false);
    at::Tensor emb = backbone->layer(4)->forward(pooled).mean({2, 3});
    emb = emb / at::linalg_vector_norm(emb, 2, {1}, true).clamp_min(1e-12);
    similarity = at::matmul(emb.slice(0, 1), emb[0]).cpu();
  });

  const at::Tensor order = similarity.argsort(0, true);
  const at::Tensor identity_iou = boxes::box_iou(proposals, gt);
  nlohmann::json results = {{"query", {{"frame", 0}, {"identity", 0}}}, {"ranking", nlohmann::json::array()}};
  std::cout << "anchors " << anchors.size(0) << ", sampled " << sampled_pos << " positive / " << sampled_neg
            << " negative, gallery boxes after NMS " << proposals.size(0) << "\n\n"
            << "rank  similarity  identity  box\n";
  for (int64_t r = 0; r < std::min<int64_t>(8, order.size(0)); ++r) {
    const int64_t i = order[r].item<int64_t>();
    const auto [best_iou, best_gt] = identity_iou[i].max(0);
    const int identity = best_iou.item<float>() >= 0.5f ? gallery_frame[best_gt.item<int64_t>()].identity : -1;
    const auto b = proposals[i];
    std::cout << std::left << std::setw(6) << r + 1 << std::setw(12) << std::fixed << std::setprecision(4)
              << similarity[i].item<float>() << std::setw(10) << identity << std::setprecision(0) << "("
              << b[0].item<float>() << ", " << b[1].item<float>() << ", " << b[2].item<float>() << ", "
              << b[3].item<float>() << ")\n";
    results["ranking"].push_back({{"similarity", similarity[i].item<float>()},
                                  {"identity", identity},
                                  {"box", {b[0].item<float>(), b[1].item<float>(), b[2].item<float>(), b[3].item<float>()}}});
  }
  std::cout << "\nstage                              ms\n";
  for (const auto& [name, ms] : timings) {
    std::cout << std::left << std::setw(35) << name << std::setprecision(1) << ms << "\n";
    results["timings_ms"][name] = ms;
  }
  const auto path = std::filesystem::path(args.output) / "demo.json";
  util::write_text_atomically(path.string(), results.dump(2) + "\n");
  std::cout << "wrote " << path.string() << (args.weights.empty() ? " (random backbone weights: pass --weights "
                                                                    "for a torchvision ResNet-50)" : "")
            << "\n";
}

void add_demo_command(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  auto* cmd = app.add_subcommand("demo", "End-to-end walk through the pipeline on a built-in synthetic scene");
  cmd->add_option("--weights", args->weights, "torchvision ResNet-50 checkpoint for the backbone")
      ->check(CLI::ExistingFile);
  cmd->add_option("--output", args->output, "Output folder for demo.json")->capture_default_str();
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed (scene noise, random weights)")->capture_default_str();
  cmd->callback([args] { run_demo(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(10, add_demo_command);

}  // namespace psearch::cli
