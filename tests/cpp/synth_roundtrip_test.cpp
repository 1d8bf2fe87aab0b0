// Round trip: `psearch synth` writes tiny PRW and CUHK-SYSU datasets, the dataset loaders
// read them back, and what they find matches what the generator says it wrote.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/prw.h"
#include "psearch/data/synth/files.h"
#include "psearch/data/synth/synth.h"

namespace psearch::data {
namespace {

namespace fs = std::filesystem;
using synth::Format;

/// Generates a tiny dataset into a fresh temporary directory, removed afterwards.
class SynthRoundTrip : public ::testing::Test {
 protected:
  synth::SynthStats generate(Format format) {
    root_ = fs::temp_directory_path() /
            ("psearch_synth_" + synth::format_name(format) + "_" + std::to_string(::getpid()));
    synth::remove_tree(root_);
    synth::SynthOptions o;
    o.format = format;
    o.size = synth::SizePreset::kTiny;
    o.out = root_.string();
    o.seed = 11;
    o.threads = 2;
    return synth::generate_dataset(o);
  }
  void TearDown() override { synth::remove_tree(root_); }

  fs::path root_;
};

int64_t count_boxes(const std::vector<ImageRecord>& images, bool labeled_only) {
  int64_t n = 0;
  for (const auto& im : images)
    for (const auto& p : im.persons) n += !labeled_only || p.pid != kUnlabeled;
  return n;
}

TEST_F(SynthRoundTrip, PrwLoadsWithTheWrittenCounts) {
  const auto stats = generate(Format::kPrw);
  const TrainSplit train = load_prw_train(root_.string());
  const SearchSplit test = load_prw_test(root_.string());
  EXPECT_EQ(static_cast<int64_t>(train.images.size()), stats.train_images);
  EXPECT_EQ(static_cast<int64_t>(test.images.size()), stats.test_images);
  EXPECT_EQ(train.num_labeled_ids, stats.train_identities);
  EXPECT_EQ(count_boxes(train.images, false) + count_boxes(test.images, false), stats.boxes);
  EXPECT_EQ(count_boxes(train.images, true) + count_boxes(test.images, true), stats.labeled_boxes);
  EXPECT_EQ(train.summary.skipped_degenerate_boxes + test.summary.skipped_degenerate_boxes, 0);
  ASSERT_EQ(static_cast<int64_t>(test.queries.size()), stats.queries);
  for (const auto& q : test.queries) {
    ASSERT_FALSE(q.positives.empty()) << "query " << q.pid;
    const int query_camera = test.images[q.image].camera;
    bool other_camera = false;
    for (const auto& [image, box] : q.positives) other_camera |= test.images[image].camera != query_camera;
    EXPECT_TRUE(other_camera) << "query " << q.pid << " has no cross-camera ground truth";
  }
  // Cross-camera protocol: the query's own camera leaves the gallery, positives remain.
  for (const auto& q : load_prw_test(root_.string(), false).queries) EXPECT_FALSE(q.positives.empty());
}

TEST_F(SynthRoundTrip, CuhkSysuLoadsWithTheWrittenCounts) {
  const auto stats = generate(Format::kCuhkSysu);
  const TrainSplit train = load_cuhk_sysu_train(root_.string());
  EXPECT_EQ(static_cast<int64_t>(train.images.size()), stats.train_images);
  EXPECT_EQ(train.num_labeled_ids, stats.train_identities);
  EXPECT_EQ(train.summary.skipped_degenerate_boxes, 0);
  EXPECT_EQ(train.summary.unmatched_identity_boxes, 0);
  ASSERT_EQ(stats.gallery_sizes, std::vector<int>{50});
  const SearchSplit test = load_cuhk_sysu_test(root_.string(), 50);
  EXPECT_EQ(static_cast<int64_t>(test.images.size()), stats.test_images);
  EXPECT_EQ(count_boxes(train.images, false) + count_boxes(test.images, false), stats.boxes);
  EXPECT_EQ(test.summary.unmatched_identity_boxes, 0);
  ASSERT_EQ(static_cast<int64_t>(test.queries.size()), stats.queries);
  for (const auto& q : test.queries) {
    EXPECT_EQ(q.gallery.size(), 50u);
    EXPECT_FALSE(q.positives.empty()) << "query " << q.pid;
    EXPECT_EQ(std::set<int32_t>(q.gallery.begin(), q.gallery.end()).count(q.image), 0u);
  }
  const SearchSplit whole = load_cuhk_sysu_test(root_.string(), -1);
  for (const auto& q : whole.queries) EXPECT_EQ(static_cast<int64_t>(q.gallery.size()), stats.test_images - 1);
  EXPECT_EQ(static_cast<int64_t>(load_cuhk_sysu_test(root_.string(), -1, CuhkSubset::kOcclusion).queries.size()),
            stats.occlusion_queries);
  EXPECT_EQ(
      static_cast<int64_t>(load_cuhk_sysu_test(root_.string(), -1, CuhkSubset::kLowResolution).queries.size()),
      stats.low_resolution_queries);
}

TEST_F(SynthRoundTrip, SameSeedSameCounts) {
  const auto a = generate(Format::kPrw);
  const auto b = generate(Format::kPrw);
  EXPECT_EQ(a.boxes, b.boxes);
  EXPECT_EQ(a.queries, b.queries);
  EXPECT_EQ(a.alternate_variables, b.alternate_variables);
}

}  // namespace
}  // namespace psearch::data
