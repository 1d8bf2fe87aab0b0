// The gallery's store and vector index, against torch's own matmul + topk as the oracle:
// exact search equals brute force (with and without a filter), the approximate IVF index
// keeps recall@10 on clustered data, incremental adds match a fresh build, and a store
// refuses another model, keeps whole batches only, and reads back what it wrote.
#include <ATen/TensorOperators.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/topk.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "psearch/gallery/gallery_model.h"
#include "psearch/gallery/gallery_store.h"
#include "psearch/gallery/vector_index.h"
#include "psearch/modeling/pretrained_weights.h"
#include "test_util.h"

namespace psearch::gallery {
namespace {

/// n unit vectors around n / 50 centres (cosine ~0.6 within a centre).
at::Tensor clustered(int64_t n, int64_t dim, int64_t seed) {
  at::manual_seed(static_cast<uint64_t>(seed));
  at::Tensor centres = at::randn({std::max<int64_t>(n / 50, 1), dim});
  centres = centres / centres.norm(2, {1}, true);
  at::Tensor x = centres.index_select(0, at::randint(centres.size(0), {n}, at::kLong)) +
                 (0.8 / std::sqrt(static_cast<double>(dim))) * at::randn({n, dim});
  return (x / x.norm(2, {1}, true)).contiguous();
}

TEST(VectorIndex, ExactSearchEqualsTorchTopkWithAndWithoutAFilter) {
  const at::Tensor x = clustered(3000, 64, 1);
  const at::Tensor ids = at::arange(10, 10 + 3000 * 3, 3, at::kLong);  // sparse, ascending ids
  VectorIndex index(ids, x, IndexKind::kExact);
  const at::Tensor queries = clustered(8, 64, 2);
  const auto got = index.search(queries, 20);
  const auto [values, rows] = at::topk(at::matmul(queries, x.t()), 20);
  for (int64_t q = 0; q < 8; ++q) {
    ASSERT_EQ(got[q].size(), 20u);
    for (int64_t j = 0; j < 20; ++j) {
      EXPECT_EQ(got[q][j].id, ids[rows[q][j].item<int64_t>()].item<int64_t>());
      EXPECT_NEAR(got[q][j].similarity, values[q][j].item<float>(), 1e-5);
    }
  }
  // Only every 5th row allowed: the top-k among those.
  std::vector<int64_t> allowed;
  for (int64_t r = 0; r < 3000; r += 5) allowed.push_back(ids[r].item<int64_t>());
  allowed.push_back(999999);  // an id the index does not hold is ignored
  const auto filtered = index.search(queries, 7, allowed);
  const at::Tensor sub = x.index_select(0, at::arange(0, 3000, 5, at::kLong));
  const auto [sub_values, sub_rows] = at::topk(at::matmul(queries, sub.t()), 7);
  for (int64_t q = 0; q < 8; ++q)
    for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(filtered[q][j].id, allowed[sub_rows[q][j].item<int64_t>()]);
  // Fewer allowed than k: all of them, no padding.
  EXPECT_EQ(index.search(queries, 50, std::vector<int64_t>{ids[3].item<int64_t>(), ids[9].item<int64_t>()})[0].size(), 2u);
}

TEST(VectorIndex, ApproximateRecallOnClusteredVectors) {
  const at::Tensor x = clustered(20000, 64, 3);
  VectorIndex index(at::arange(1, 20001, at::kLong), x, IndexKind::kApproximate);
  EXPECT_GE(index.recall_at_k(10, 200), 0.95);
  VectorIndex exact(at::arange(1, 20001, at::kLong), x, IndexKind::kExact);
  EXPECT_EQ(exact.recall_at_k(10), 1.0);
}

TEST(VectorIndex, IncrementalAddsEqualAFreshBuild) {
  const at::Tensor x = clustered(1000, 32, 4);
  const at::Tensor ids = at::arange(1, 1001, at::kLong);
  VectorIndex fresh(ids, x, IndexKind::kExact);
  VectorIndex grown(ids.narrow(0, 0, 600), x.narrow(0, 0, 600), IndexKind::kExact);
  grown.add(ids.narrow(0, 600, 400), x.narrow(0, 600, 400));
  const at::Tensor queries = clustered(4, 32, 5);
  const auto a = fresh.search(queries, 15), b = grown.search(queries, 15);
  for (size_t q = 0; q < a.size(); ++q)
    for (size_t j = 0; j < a[q].size(); ++j) EXPECT_EQ(a[q][j].id, b[q][j].id);
  EXPECT_THROW(grown.add(ids.narrow(0, 0, 1), x.narrow(0, 0, 1)), std::invalid_argument);  // ids must grow
}

TEST(VectorIndex, SavedIndexLoadsBackOnlyForItsTag) {
  test::TempDir dir;
  const std::string file = (dir.path() / "g.db.ivf").string();
  const at::Tensor x = clustered(5000, 32, 6);
  const at::Tensor ids = at::arange(1, 5001, at::kLong);
  VectorIndex built(ids, x, IndexKind::kApproximate);
  built.save(file, "gallery-a");
  const auto loaded = VectorIndex::load(file, "gallery-a");
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->size(), 5000);
  EXPECT_EQ(loaded->last_id(), 5000);
  const at::Tensor queries = clustered(6, 32, 7);
  const auto a = built.search(queries, 10), b = loaded->search(queries, 10);
  for (size_t q = 0; q < a.size(); ++q)
    for (size_t j = 0; j < a[q].size(); ++j) {
      EXPECT_EQ(a[q][j].id, b[q][j].id);
      EXPECT_FLOAT_EQ(a[q][j].similarity, b[q][j].similarity);
    }
  EXPECT_NEAR(loaded->recall_at_k(10, 50), 1.0, 0.05);  // vectors read back from the lists
  EXPECT_EQ(VectorIndex::load(file, "gallery-b"), nullptr);  // another gallery's file
  EXPECT_EQ(VectorIndex::load((dir.path() / "missing.ivf").string(), "gallery-a"), nullptr);
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(file, std::ios::binary) << bytes.substr(0, bytes.size() / 2);  // truncated
  EXPECT_EQ(VectorIndex::load(file, "gallery-a"), nullptr);
}

class GalleryStoreTest : public ::testing::Test {
 protected:
  std::string path() const { return (dir_.path() / "g.db").string(); }
  test::TempDir dir_;
};

FrameDetections frame(int64_t index, int64_t people, int64_t dim) {
  FrameDetections f;
  f.frame = index;
  f.time = index / 10.0;
  f.boxes = at::tensor({10.f, 20.f, 50.f, 120.f}).repeat({people, 1});
  f.scores = at::full({people}, 0.9f);
  f.features = clustered(people, dim, index);
  return f;
}

TEST_F(GalleryStoreTest, WritesAndReadsBackDetectionsAndRefusesAnotherModel) {
  GalleryStore store(path(), GalleryStore::Mode::kCreateOrWrite);
  store.bind_model({"separate", "pretrained", "abc123", 16, {}});
  SourceRecord source;
  source.path = "/videos/a.mp4";
  source.camera = "door";
  source.stride = 5;
  source.frames_total = 100;
  source = store.add_source(source);
  store.commit_frames(source.id, {frame(0, 2, 16), frame(5, 3, 16)}, 6);
  auto [ids, embeddings] = store.embeddings();
  ASSERT_EQ(ids.size(0), 5);
  EXPECT_TRUE(at::allclose(embeddings.narrow(0, 2, 3), frame(5, 3, 16).features));
  EXPECT_EQ(store.find_source("/videos/a.mp4")->next_frame, 6);
  EXPECT_EQ(store.find_source("/videos/a.mp4")->frames_indexed, 2);
  EXPECT_EQ(store.select({{"door"}, 0.4, std::nullopt}).size(), 3u);  // frame 5 at 0.5 s
  EXPECT_TRUE(store.select({{"lobby"}, std::nullopt, std::nullopt}).empty());
  EXPECT_EQ(store.embeddings(ids[2].item<int64_t>()).first.size(0), 2);
  const auto records = store.detections({ids[4].item<int64_t>()});
  EXPECT_EQ(records[0].camera, "door");
  EXPECT_EQ(records[0].frame, 5);
  EXPECT_FLOAT_EQ(records[0].box[3], 120.f);
  try {
    store.bind_model({"nae", "/runs/nae.pt", "def456", 16, {}});
    FAIL() << "another model was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("built with separate"), std::string::npos) << e.what();
  }
  store.bind_model({"separate", "pretrained", "abc123", 16, {}});  // the same model is fine
}

TEST_F(GalleryStoreTest, AFailedBatchStoresNothing) {
  GalleryStore store(path(), GalleryStore::Mode::kCreateOrWrite);
  store.bind_model({"separate", "pretrained", "abc", 16, {}});
  SourceRecord source;
  source.path = "/videos/b.mp4";
  source.camera = "b";
  source = store.add_source(source);
  store.commit_frames(source.id, {frame(0, 2, 16)}, 1);
  // A batch whose second frame cannot be bound (no features at all) fails midway...
  FrameDetections broken = frame(2, 1, 16);
  broken.features = at::Tensor();
  EXPECT_ANY_THROW(store.commit_frames(source.id, {frame(1, 2, 16), broken}, 3));
  // ... and leaves neither its first frame's rows nor its progress.
  EXPECT_EQ(store.embeddings().first.size(0), 2);
  EXPECT_EQ(store.find_source("/videos/b.mp4")->next_frame, 1);
}

TEST_F(GalleryStoreTest, RefusesFilesThatAreNoGallery) {
  EXPECT_THROW(GalleryStore(path(), GalleryStore::Mode::kRead), std::runtime_error);  // missing
  { std::ofstream(path()) << "plain text, not SQLite"; }
  try {
    GalleryStore store(path(), GalleryStore::Mode::kWrite);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path(), 0), 0u) << e.what();
  }
}

// A gallery built by the pretrained separate pipeline records a hash of the settings that
// shape its embeddings: training keys must not change it (train.precision once did, and
// every existing gallery stopped opening), a model or inference key must.
TEST(GalleryModel, PretrainedIdentityIgnoresTrainingKeysOnly) {
  namespace pm = psearch::modeling;
  for (const char* name : {pm::kSSDLitePerson, pm::kMobileNetV2ImageNet})
    if (!std::filesystem::exists(pm::pretrained_weights_path(name)))
      GTEST_SKIP() << name << " not converted: set-up has not run (scripts/setup.sh)";
  const c10::Device cpu(c10::kCPU);
  const std::string plain = load_gallery_model("", "separate", {}, cpu).identity.sha256;
  EXPECT_EQ(load_gallery_model("", "separate", {"train.precision=bf16", "train.lr=0.5"}, cpu).identity.sha256, plain);
  EXPECT_NE(load_gallery_model("", "separate", {"inference.det_thresh=0.3"}, cpu).identity.sha256, plain);
  EXPECT_NE(load_gallery_model("", "separate", {"model.separate.detector_input_size=[320, 320]"}, cpu).identity.sha256, plain);
}

}  // namespace
}  // namespace psearch::gallery
