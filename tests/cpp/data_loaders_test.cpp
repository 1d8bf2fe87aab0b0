// The CUHK-SYSU and PRW loaders against the tiny trees that tests/python/fixtures_datasets.py
// writes with scipy.io.savemat. The expected values below are worked out by hand from that
// file's constants (box rules: docs/datasets.md), not computed by the code under test.
#include <dirent.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "psearch/data/cuhk_sysu.h"
#include "psearch/data/mat_file.h"
#include "psearch/data/prw.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace psearch::data;

namespace {

std::string cuhk_root() { return psearch::test::fixture("datasets/cuhk_sysu"); }
std::string prw_root() { return psearch::test::fixture("datasets/prw"); }
std::string cuhk_file(const std::string& rel) { return cuhk_root() + "/" + rel; }
std::string prw_file(const std::string& rel) { return prw_root() + "/" + rel; }

/// A scratch copy of a fixture tree (or an empty scratch directory), removed afterwards.
/// Copies and removals use POSIX calls: libtorch.so exports its own std::filesystem
/// functions, which the dynamic linker prefers, and remove_all among them crashes.
class Scratch {
 public:
  explicit Scratch(const std::string& copy_of = "") {
    static int counter = 0;
    dir_ = (fs::temp_directory_path() /
            ("psearch_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
               .string();
    remove_tree(dir_);
    ::mkdir(dir_.c_str(), 0755);
    if (!copy_of.empty()) copy_tree(copy_of, dir_);
  }
  ~Scratch() { remove_tree(dir_); }
  std::string path(const std::string& rel = "") const { return rel.empty() ? dir_ : dir_ + "/" + rel; }

 private:
  static void remove_tree(const std::string& dir) {
    ::nftw(
        dir.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  static void copy_tree(const std::string& from, const std::string& to) {
    DIR* d = ::opendir(from.c_str());
    ASSERT_NE(d, nullptr) << from;
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string src = from + "/" + name, dst = to + "/" + name;
      struct stat st {};
      ::stat(src.c_str(), &st);
      if (S_ISDIR(st.st_mode)) {
        ::mkdir(dst.c_str(), 0755);
        copy_tree(src, dst);
      } else {
        std::ifstream in(src, std::ios::binary);
        std::ofstream(dst, std::ios::binary) << in.rdbuf();
      }
    }
    ::closedir(d);
  }
  std::string dir_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Runs `fn`, expects a std::exception whose message contains every one of `parts`.
template <typename Fn>
std::string expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const std::exception& e) {
    const std::string message = e.what();
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no exception";
  return "";
}

void expect_box(const Box& box, float x1, float y1, float x2, float y2) {
  EXPECT_EQ(box[0], x1);
  EXPECT_EQ(box[1], y1);
  EXPECT_EQ(box[2], x2);
  EXPECT_EQ(box[3], y2);
}

void expect_person(const PersonBox& p, float x1, float y1, float x2, float y2, int64_t pid, bool hard = false) {
  expect_box(p.box, x1, y1, x2, y2);
  EXPECT_EQ(p.pid, pid);
  EXPECT_EQ(p.hard, hard);
}

using Positives = std::vector<std::pair<int32_t, Box>>;
void expect_positives(const Positives& got, const Positives& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << "positive " << i;
    EXPECT_EQ(got[i].second, want[i].second) << "positive " << i;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The .mat layer

TEST(MatFile, ListsVariablesAndNamesElementsInErrors) {
  MatFile file(cuhk_file("annotation/Images.mat"));
  EXPECT_EQ(file.variable_names(), std::vector<std::string>({"Img"}));
  const MatNode img = file.read("Img");
  ASSERT_TRUE(img.is_struct());
  EXPECT_EQ(img.dims(), std::vector<size_t>({1, 9}));
  EXPECT_EQ(img.field_names(), std::vector<std::string>({"imname", "nAppear", "box"}));
  EXPECT_EQ(img.field(4, "imname").string(), "s5.jpg");
  const MatNode box = img.field(0, "box");
  EXPECT_EQ(box.dims_text(), "1x3");
  EXPECT_EQ(box.field(1, "idlocate").numbers(), std::vector<double>({50, 60, 0, 40}));
  expect_error([&] { box.field(1, "idlocate").numbers_exactly(5, "a numeric 1x5 array"); },
               {"Images.mat: field 'idlocate' of Img(1).box(2) is not a numeric 1x5 array (found a 1x4 double array)"});
  expect_error([&] { img.field(2, "height"); }, {"Images.mat: Img(3) has no field 'height'", "imname, nAppear, box"});
  expect_error([&] { img.field(9, "imname"); }, {"Img has 9 elements; element 10 does not exist"});
  expect_error([&] { img.cell(0); }, {"Img is a struct array, not a cell array"});
  expect_error([&] { file.read("Images", "the image list"); },
               {"Images.mat: variable 'Images' not found (expected the image list); variables in the file: Img"});
}

TEST(MatFile, CellsOfStrings) {
  MatFile file(cuhk_file("annotation/pool.mat"));
  const MatNode pool = file.read("pool");
  ASSERT_TRUE(pool.is_cell());
  EXPECT_EQ(pool.dims(), std::vector<size_t>({5, 1}));
  EXPECT_EQ(pool.cell(1).string(), "s5.jpg");
  expect_error([&] { pool.cell(7); }, {"pool has 5 cells; cell 8 does not exist"});
  expect_error([&] { pool.cell(0).numbers(); }, {"pool.mat: pool{1} is a char array, not a real numeric array"});
}

TEST(MatFile, MissingCorruptAndTruncatedFilesNameThePath) {
  Scratch dir;
  expect_error([&] { MatFile f(dir.path("nothing.mat")); }, {dir.path("nothing.mat") + ": file not found"});
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  write_bytes(dir.path("noise.mat"), noise);
  expect_error([&] { MatFile f(dir.path("noise.mat")); }, {dir.path("noise.mat") + ": not a MATLAB v5 .mat file"});
  write_bytes(dir.path("short.mat"), "MATLAB 5.0");
  expect_error([&] { MatFile f(dir.path("short.mat")); }, {dir.path("short.mat") + ": not a MATLAB v5 .mat file"});
  std::string v73 = read_bytes(cuhk_file("annotation/pool.mat"));
  v73[124] = 0x00;
  v73[125] = 0x02;
  write_bytes(dir.path("v73.mat"), v73);
  expect_error([&] { MatFile f(dir.path("v73.mat")); }, {dir.path("v73.mat") + ": is a MATLAB v7.3 (HDF5) .mat file"});
  // Truncations of a compressed and of an uncompressed file, at many lengths.
  for (const char* rel : {"annotation/Images.mat", "annotation/test/train_test/TestG50.mat"}) {
    const std::string bytes = read_bytes(cuhk_file(rel));
    for (size_t keep : {size_t{130}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 9}) {
      write_bytes(dir.path("cut.mat"), bytes.substr(0, keep));
      const std::string message = expect_error(
          [&] {
            if (std::string(rel).find("Images") != std::string::npos) {
              read_cuhk_images(dir.path("cut.mat"));
            } else {
              read_cuhk_protocol(dir.path("cut.mat"), {"TestG50"});
            }
          },
          {dir.path("cut.mat") + ": "});
      EXPECT_EQ(message.rfind(dir.path("cut.mat"), 0), 0u) << message;
    }
  }
}

namespace {

// Hand-made MAT v5 files (little endian) for cases scipy will not write.
std::string u32le(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
/// A data element: tag (type, byte count) and payload, padded to 8 bytes.
std::string element(uint32_t type, const std::string& payload) {
  std::string out = u32le(type) + u32le(static_cast<uint32_t>(payload.size())) + payload;
  out.resize((out.size() + 7) / 8 * 8, '\0');
  return out;
}
/// A miMATRIX element: class, dimensions, name, then `rest` (data or child elements).
std::string matrix(uint32_t cls, const std::vector<uint32_t>& dims, const std::string& name, const std::string& rest) {
  std::string d;
  for (uint32_t v : dims) d += u32le(v);
  return element(14, element(6, u32le(cls) + u32le(0)) + element(5, d) + element(1, name) + rest);
}
std::string v5_file(const std::string& elements) {
  std::string header = "MATLAB 5.0 MAT-file, written by psearch's tests";
  header.resize(116, ' ');
  header += std::string(8, '\0');
  header += std::string("\x00\x01", 2) + "IM";
  return header + elements;
}

}  // namespace

TEST(MatFile, CountsMustBeBackedByBytes) {
  Scratch dir;
  const std::string path = dir.path("crafted.mat");
  // A 1 x 2^31-1 cell array with no cells in the file (matio would allocate first).
  write_bytes(path, v5_file(matrix(1, {1, 0x7fffffff}, "pool", "")));
  expect_error([&] { read_cuhk_pool(path); },
               {path + ": damaged MATLAB data (the variable at byte 128", "cell array of 2147483647 cells in 0 bytes"});
  // A struct array with fields and too few field elements.
  const std::string fields = element(5, u32le(8)) + element(1, std::string("Query\0\0\0Gallery\0", 16));
  write_bytes(path, v5_file(matrix(2, {1, 1000}, "TestG50", fields + matrix(6, {0, 0}, "", ""))));
  expect_error([&] { read_cuhk_protocol(path, {"TestG50"}); }, {"struct array of 1000 x 2 fields in 48 bytes"});
  // A struct array without fields but 2^31-1 elements: no bytes needed, nothing allocated for it.
  write_bytes(path, v5_file(matrix(2, {1, 0x7fffffff}, "TestG50", element(5, u32le(8)) + element(1, ""))));
  expect_error([&] { read_cuhk_protocol(path, {"TestG50"}); },
               {path + ": TestG50 has no field 'Query' (expected a struct array with fields Query, Gallery)"});
  // An int32 array stored as doubles (matio's conversion of out-of-range values is undefined).
  write_bytes(path, v5_file(matrix(12, {1, 5}, "box_new", element(9, std::string(40, '\x7f')))));
  expect_error([&] { read_prw_annotation(path); }, {"array of class 12 stored as data type 9"});
  // A numeric array with fewer values than its dimensions say.
  write_bytes(path, v5_file(matrix(6, {2, 5}, "box_new", element(9, std::string(72, '\0')))));
  expect_error([&] { read_prw_annotation(path); }, {"10 elements declared, 9 present"});
  // The same array with all its values reads.
  write_bytes(path, v5_file(matrix(6, {2, 5}, "box_new", element(9, std::string(80, '\0')))));
  EXPECT_EQ(read_prw_annotation(path).size(), 2u);
  // Nesting deeper than 64 levels.
  std::string nested = matrix(6, {0, 0}, "", "");
  for (int i = 0; i < 70; ++i) nested = matrix(1, {1, 1}, i == 69 ? "pool" : "", nested);
  write_bytes(path, v5_file(nested));
  expect_error([&] { read_cuhk_pool(path); }, {"arrays nested more than 64 deep"});
}

// ---------------------------------------------------------------------------------------
// CUHK-SYSU file readers: every value the fixture wrote

TEST(CuhkSysu, ReadsImagesMat) {
  const auto images = read_cuhk_images(cuhk_file("annotation/Images.mat"));
  ASSERT_EQ(images.size(), 9u);
  const std::vector<std::string> names = {"s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg", "s5.jpg",
                                          "s6.jpg", "s7.jpg", "s8.jpg", "s9.jpg"};
  const std::vector<size_t> counts = {3, 2, 2, 0, 2, 2, 1, 2, 1};
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_EQ(images[i].name, names[i]);
    EXPECT_EQ(images[i].boxes.size(), counts[i]) << names[i];
  }
  using A = std::array<double, 4>;
  EXPECT_EQ(images[0].boxes[0].xywh, (A{10.7, 20.2, 30.9, 60.5}));
  EXPECT_EQ(images[0].boxes[1].xywh, (A{50, 60, 0, 40}));
  EXPECT_EQ(images[0].boxes[2].xywh, (A{100, 5, 20, 50}));
  EXPECT_FALSE(images[0].boxes[0].hard);
  EXPECT_TRUE(images[0].boxes[2].hard);
  EXPECT_EQ(images[1].boxes[0].xywh, (A{-3.6, 4.4, 25.5, 70.2}));
  EXPECT_EQ(images[1].boxes[1].xywh, (A{40, 10, 22, -1}));
  EXPECT_EQ(images[2].boxes[1].xywh, (A{200, 30, 0.5, 30}));
  EXPECT_EQ(images[4].boxes[0].xywh, (A{12.9, 14.1, 40.8, 90.3}));
  EXPECT_TRUE(images[4].boxes[1].hard);
  EXPECT_EQ(images[5].boxes[1].xywh, (A{120.5, 40.5, 25.5, 60.5}));
  EXPECT_EQ(images[8].boxes[0].xywh, (A{7, 8, 20, 40}));
}

TEST(CuhkSysu, ReadsPoolTrainAndProtocolFiles) {
  EXPECT_EQ(read_cuhk_pool(cuhk_file("annotation/pool.mat")),
            std::vector<std::string>({"s6.jpg", "s5.jpg", "s7.jpg", "s8.jpg", "s9.jpg"}));

  const auto train = read_cuhk_train(cuhk_file("annotation/test/train_test/Train.mat"));
  ASSERT_EQ(train.size(), 3u);
  EXPECT_EQ(train[0].name, "p101");
  EXPECT_EQ(train[1].name, "p102");
  EXPECT_EQ(train[2].name, "p103");
  ASSERT_EQ(train[1].scenes.size(), 3u);
  EXPECT_EQ(train[1].scenes[2].image, "s5.jpg");
  EXPECT_EQ(train[0].scenes[0].xywh, (std::array<double, 4>{10.2, 20.9, 30.1, 60.0}));
  ASSERT_EQ(train[2].scenes.size(), 1u);  // a 1x1 scene struct
  EXPECT_EQ(train[2].scenes[0].xywh, (std::array<double, 4>{999, 999, 10, 10}));

  const auto g50 = read_cuhk_protocol(cuhk_file("annotation/test/train_test/TestG50.mat"), {"TestG50"});
  ASSERT_EQ(g50.size(), 2u);
  EXPECT_EQ(g50[0].query_image, "s5.jpg");
  EXPECT_EQ(g50[0].identity, "p201");
  EXPECT_EQ(g50[0].query_xywh, (std::array<double, 4>{12.9, 14.1, 40.8, 90.3}));
  ASSERT_EQ(g50[0].gallery.size(), 2u);
  EXPECT_EQ(g50[0].gallery[0].image, "s6.jpg");
  EXPECT_TRUE(g50[0].gallery[0].has_box);
  EXPECT_EQ(g50[0].gallery[1].image, "s7.jpg");
  EXPECT_FALSE(g50[0].gallery[1].has_box);  // empty idlocate: a distractor
  EXPECT_EQ(g50[1].identity, "p202");
  ASSERT_EQ(g50[1].gallery.size(), 3u);
  EXPECT_EQ(g50[1].gallery[2].xywh, (std::array<double, 4>{33.9, 44.2, 20.7, 50.1}));

  const auto occlusion = read_cuhk_protocol(cuhk_file("annotation/test/subset/Occlusion.mat"), {"Occlusion1"});
  ASSERT_EQ(occlusion.size(), 1u);
  EXPECT_EQ(occlusion[0].query_image, "s6.jpg");
  expect_error([&] { read_cuhk_protocol(cuhk_file("annotation/test/train_test/TestG50.mat"), {"TestG100"}); },
               {"TestG50.mat: variable 'TestG100' not found", "variables in the file: TestG50"});
}

TEST(CuhkSysu, BoxRuleTruncatesThenFormsCorners) {
  expect_box(cuhk_corner_box({10.7, 20.2, 30.9, 60.5}), 10, 20, 40, 80);  // not trunc(10.7 + 30.9) = 41
  expect_box(cuhk_corner_box({-3.6, 4.4, 25.5, 70.2}), -3, 4, 22, 74);    // toward zero, no clipping
}

// ---------------------------------------------------------------------------------------
// CUHK-SYSU splits

TEST(CuhkSysu, TrainSplit) {
  const TrainSplit split = load_cuhk_sysu_train(cuhk_root());
  EXPECT_EQ(split.num_labeled_ids, 3);
  ASSERT_EQ(split.images.size(), 4u);  // s1..s4: Images.mat order, pool images left out
  EXPECT_EQ(split.images[0].name, "s1.jpg");
  EXPECT_EQ(split.images[0].path, cuhk_root() + "/Image/SSM/s1.jpg");
  EXPECT_EQ(split.images[3].name, "s4.jpg");
  EXPECT_EQ(split.images[0].camera, -1);

  const auto& s1 = split.images[0].persons;
  ASSERT_EQ(s1.size(), 2u);  // the w = 0 box is dropped
  expect_person(s1[0], 10, 20, 40, 80, 0);
  expect_person(s1[1], 100, 5, 120, 55, 1, /*hard=*/true);
  const auto& s2 = split.images[1].persons;
  ASSERT_EQ(s2.size(), 1u);  // the h = -1 box is dropped
  expect_person(s2[0], -3, 4, 22, 74, 0);
  const auto& s3 = split.images[2].persons;
  ASSERT_EQ(s3.size(), 1u);  // w = 0.5 truncates to 0: dropped
  expect_person(s3[0], 0, 0, 15, 45, 1);
  EXPECT_TRUE(split.images[3].persons.empty());

  EXPECT_EQ(split.summary.images, 4);
  EXPECT_EQ(split.summary.boxes, 4);
  EXPECT_EQ(split.summary.skipped_degenerate_boxes, 3);
  EXPECT_EQ(split.summary.unmatched_identity_boxes, 2);  // p102 in test image s5, p103's unknown box
}

namespace {

// Pool order: s6, s5, s7, s8, s9 -> indices 0..4.
void expect_test_images(const SearchSplit& split) {
  ASSERT_EQ(split.images.size(), 5u);
  const std::vector<std::string> names = {"s6.jpg", "s5.jpg", "s7.jpg", "s8.jpg", "s9.jpg"};
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(split.images[i].name, names[i]);
  const auto& s6 = split.images[0].persons;
  ASSERT_EQ(s6.size(), 2u);
  expect_person(s6[0], 5, 6, 40, 91, 201);
  expect_person(s6[1], 120, 40, 145, 100, 202);
  const auto& s5 = split.images[1].persons;
  ASSERT_EQ(s5.size(), 2u);
  expect_person(s5[0], 12, 14, 52, 104, 201);
  expect_person(s5[1], 70, 20, 100, 100, 202, true);
  ASSERT_EQ(split.images[2].persons.size(), 1u);
  expect_person(split.images[2].persons[0], 33, 44, 53, 94, 202);
  ASSERT_EQ(split.images[3].persons.size(), 1u);  // the w = 0 box is dropped
  expect_person(split.images[3].persons[0], 1, 2, 31, 72, kUnlabeled);
  ASSERT_EQ(split.images[4].persons.size(), 1u);
  expect_person(split.images[4].persons[0], 7, 8, 27, 48, kUnlabeled);
  EXPECT_EQ(split.summary.images, 5);
  EXPECT_EQ(split.summary.boxes, 7);
  EXPECT_EQ(split.summary.skipped_degenerate_boxes, 1);
}

}  // namespace

TEST(CuhkSysu, TestSplitGallery50) {
  const SearchSplit split = load_cuhk_sysu_test(cuhk_root(), 50);
  expect_test_images(split);
  EXPECT_EQ(split.summary.unmatched_identity_boxes, 0);
  ASSERT_EQ(split.queries.size(), 2u);
  const SearchQuery& q0 = split.queries[0];
  EXPECT_EQ(q0.image, 1);
  EXPECT_EQ(q0.pid, "p201");
  expect_box(q0.box, 12, 14, 52, 104);
  EXPECT_EQ(q0.gallery, std::vector<int32_t>({0, 2}));
  expect_positives(q0.positives, {{0, {5, 6, 40, 91}}});
  const SearchQuery& q1 = split.queries[1];
  EXPECT_EQ(q1.image, 0);
  EXPECT_EQ(q1.pid, "p202");
  expect_box(q1.box, 120, 40, 145, 100);
  EXPECT_EQ(q1.gallery, std::vector<int32_t>({3, 1, 2}));
  expect_positives(q1.positives, {{1, {70, 20, 100, 100}}, {2, {33, 44, 53, 94}}});  // 33.9 -> 33, 20.7 -> 20
}

TEST(CuhkSysu, TestSplitGallery100) {
  const SearchSplit split = load_cuhk_sysu_test(cuhk_root(), 100);
  expect_test_images(split);
  ASSERT_EQ(split.queries.size(), 2u);
  EXPECT_EQ(split.queries[0].gallery, std::vector<int32_t>({3, 0, 2}));
  expect_positives(split.queries[0].positives, {{0, {5, 6, 40, 91}}});
  EXPECT_EQ(split.queries[1].gallery, std::vector<int32_t>({4, 1, 2}));
}

TEST(CuhkSysu, WholePoolGalleryAddsEveryOtherPoolImageButTheQueryImage) {
  const SearchSplit split = load_cuhk_sysu_test(cuhk_root(), -1);
  expect_test_images(split);
  ASSERT_EQ(split.queries.size(), 2u);
  // TestG50's list first, then the rest of the pool in pool order, never the query image.
  EXPECT_EQ(split.queries[0].gallery, std::vector<int32_t>({0, 2, 3, 4}));
  expect_positives(split.queries[0].positives, {{0, {5, 6, 40, 91}}});
  EXPECT_EQ(split.queries[1].gallery, std::vector<int32_t>({3, 1, 2, 4}));
  expect_positives(split.queries[1].positives, {{1, {70, 20, 100, 100}}, {2, {33, 44, 53, 94}}});
}

TEST(CuhkSysu, QuerySubsets) {
  const SearchSplit occ = load_cuhk_sysu_test(cuhk_root(), 3, CuhkSubset::kOcclusion);
  ASSERT_EQ(occ.queries.size(), 1u);
  EXPECT_EQ(occ.queries[0].image, 0);
  EXPECT_EQ(occ.queries[0].pid, "p202");
  EXPECT_EQ(occ.queries[0].gallery, std::vector<int32_t>({4, 1, 3}));
  expect_positives(occ.queries[0].positives, {{1, {70, 20, 100, 100}}});
  const SearchSplit occ_pool = load_cuhk_sysu_test(cuhk_root(), -1, CuhkSubset::kOcclusion);
  EXPECT_EQ(occ_pool.queries[0].gallery, std::vector<int32_t>({4, 1, 3, 2}));

  const SearchSplit low = load_cuhk_sysu_test(cuhk_root(), -1, CuhkSubset::kLowResolution);
  ASSERT_EQ(low.queries.size(), 1u);
  EXPECT_EQ(low.queries[0].image, 1);
  EXPECT_EQ(low.queries[0].gallery, std::vector<int32_t>({0, 4, 2, 3}));
  expect_positives(low.queries[0].positives, {{0, {5, 6, 40, 91}}});

  expect_error(
      [&] { load_cuhk_sysu_test(cuhk_root(), 100, CuhkSubset::kOcclusion); },
      {"Occlusion.mat: query 1 has a gallery of 3 images; gallery size 100 does not apply to the occlusion subset"});
  EXPECT_EQ(parse_cuhk_subset("low_resolution"), CuhkSubset::kLowResolution);
  EXPECT_THROW(parse_cuhk_subset("blurry"), std::invalid_argument);

  Scratch copy(cuhk_root());
  ::remove(copy.path("annotation/test/subset/Resolution.mat").c_str());
  expect_error(
      [&] { load_cuhk_sysu_test(copy.path(), -1, CuhkSubset::kLowResolution); },
      {copy.path("annotation/test/subset/Resolution.mat") + ": file not found (expected the CUHK-SYSU "
                                                            "low-resolution query subset, variable Test_Size)"});
}

TEST(CuhkSysu, ErrorsNameTheFileAndWhatWasExpected) {
  expect_error([&] { load_cuhk_sysu_test(cuhk_root(), 30); }, {"gallery size 30 is not one of 50, 100"});
  {
    Scratch copy(cuhk_root());
    ::remove(copy.path("annotation/Images.mat").c_str());
    expect_error(
        [&] { load_cuhk_sysu_train(copy.path()); },
        {copy.path("annotation/Images.mat") + ": file not found (expected the CUHK-SYSU image list, variable Img)"});
  }
  {
    Scratch copy(cuhk_root());
    ::remove(copy.path("annotation/test/train_test/TestG100.mat").c_str());
    expect_error([&] { load_cuhk_sysu_test(copy.path(), 100); },
                 {copy.path("annotation/test/train_test/TestG100.mat") + ": file not found", "variable TestG100"});
  }
  {
    Scratch copy(cuhk_root());
    ::remove(copy.path("Image/SSM/s3.jpg").c_str());
    expect_error([&] { load_cuhk_sysu_train(copy.path()); },
                 {copy.path("Image/SSM/s3.jpg") + ": image file not found (listed in annotation/Images.mat)"});
  }
  {
    // A file with the wrong content: pool.mat where Images.mat belongs.
    Scratch copy(cuhk_root());
    write_bytes(copy.path("annotation/Images.mat"), read_bytes(copy.path("annotation/pool.mat")));
    expect_error(
        [&] { load_cuhk_sysu_train(copy.path()); },
        {copy.path("annotation/Images.mat") + ": variable 'Img' not found (expected the CUHK-SYSU image list"});
  }
  {
    Scratch copy(cuhk_root());
    write_bytes(copy.path("annotation/test/train_test/Train.mat"), std::string(300, 'x'));
    expect_error([&] { load_cuhk_sysu_train(copy.path()); },
                 {copy.path("annotation/test/train_test/Train.mat") + ": not a MATLAB v5 .mat file"});
  }
  expect_error([&] { load_cuhk_sysu_train("/nonexistent/cuhk"); }, {"/nonexistent/cuhk: not a directory"});
}

// ---------------------------------------------------------------------------------------
// PRW

TEST(Prw, CameraAndBoxRules) {
  EXPECT_EQ(prw_camera_id("c1s3_016471"), 1);
  EXPECT_EQ(prw_camera_id("c6s2_000001.jpg"), 6);
  EXPECT_EQ(prw_camera_id("s3_016471"), -1);
  // Float corners, clipped at 0, then truncated: x = -10.5, w = 40 -> x2 = 29.5 -> 29.
  expect_box(prw_corner_box(-10.5, 50, 40, 100), 0, 50, 29, 150);
  expect_box(prw_corner_box(1750.0896, 407.5410, 86.3067, 216.9330), 1750, 407, 1836, 624);
  expect_box(prw_corner_box(-30, 5, 20, 20), 0, 5, 0, 25);
}

TEST(Prw, ReadsAnnotationFilesWithFallbackVariables) {
  using A = std::array<double, 4>;
  const auto a = read_prw_annotation(prw_file("annotations/c1s1_000151.jpg.mat"));  // box_new beats anno_file
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].id, 479);
  EXPECT_EQ(a[0].xywh, (A{10.5, 20.5, 30.2, 60.7}));
  EXPECT_EQ(a[1].id, -2);
  EXPECT_EQ(a[1].xywh, (A{-5.5, 8.2, 20.3, 40.1}));
  EXPECT_EQ(a[2].id, 12);
  EXPECT_EQ(a[2].xywh, (A{100, 50, 0, 30}));
  const auto b = read_prw_annotation(prw_file("annotations/c2s1_000226.jpg.mat"));  // anno_file beats anno_previous
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].id, 12);
  EXPECT_EQ(b[1].id, 700);
  EXPECT_EQ(b[1].xywh, (A{50, -3.2, 25, 55}));
  const auto c = read_prw_annotation(prw_file("annotations/c3s2_001234.jpg.mat"));  // anno_previous only
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 479);
  EXPECT_EQ(c[0].xywh, (A{0, 0, 15.5, 30.5}));
  EXPECT_EQ(read_prw_frame_list(prw_file("frame_test.mat"), "img_index_test"),
            std::vector<std::string>({"c1s3_016471", "c2s3_020000", "c1s3_016500", "c3s4_030000"}));
  expect_error([&] { read_prw_annotation(prw_file("frame_test.mat")); },
               {"frame_test.mat: none of the variables box_new, anno_file, anno_previous found",
                "variables in the file: img_index_test"});
  expect_error([&] { read_prw_frame_list(prw_file("frame_test.mat"), "img_index_train"); },
               {"frame_test.mat: variable 'img_index_train' not found"});
}

TEST(Prw, TrainSplitMapsIdsDenselyInSortedOrder) {
  const TrainSplit split = load_prw_train(prw_root());
  EXPECT_EQ(split.num_labeled_ids, 3);  // ids 12, 479, 700 -> 0, 1, 2
  ASSERT_EQ(split.images.size(), 3u);
  EXPECT_EQ(split.images[0].name, "c1s1_000151.jpg");
  EXPECT_EQ(split.images[0].path, prw_root() + "/frames/c1s1_000151.jpg");
  EXPECT_EQ(split.images[0].camera, 1);
  EXPECT_EQ(split.images[1].camera, 2);
  EXPECT_EQ(split.images[2].camera, 3);
  const auto& f0 = split.images[0].persons;
  ASSERT_EQ(f0.size(), 2u);  // the w = 0 row is dropped
  expect_person(f0[0], 10, 20, 40, 81, 1);
  expect_person(f0[1], 0, 8, 14, 48, kUnlabeled);  // x -5.5 clipped; x2 = 14.8 -> 14
  const auto& f1 = split.images[1].persons;
  ASSERT_EQ(f1.size(), 2u);
  expect_person(f1[0], 5, 5, 26, 45, 0);
  expect_person(f1[1], 50, 0, 75, 51, 2);  // y -3.2 clipped; y2 = 51.8 -> 51
  const auto& f2 = split.images[2].persons;
  ASSERT_EQ(f2.size(), 1u);  // the box left of x = 0 is empty once clipped: dropped
  expect_person(f2[0], 0, 0, 15, 30, 1);
  EXPECT_EQ(split.summary.images, 3);
  EXPECT_EQ(split.summary.boxes, 5);
  EXPECT_EQ(split.summary.skipped_degenerate_boxes, 2);
}

TEST(Prw, TestSplitIgnoringCameras) {
  const SearchSplit split = load_prw_test(prw_root(), /*ignore_cam_id=*/true);
  ASSERT_EQ(split.images.size(), 4u);  // c1s3_016471 (cam 1), c2s3_020000 (2), c1s3_016500 (1), c3s4_030000 (3)
  EXPECT_EQ(split.images[2].name, "c1s3_016500.jpg");
  EXPECT_EQ(split.images[2].camera, 1);
  expect_person(split.images[0].persons[0], 1750, 407, 1836, 624, 479);  // test boxes keep their PRW id
  expect_person(split.images[1].persons[1], 10, 10, 40, 70, kUnlabeled);
  expect_person(split.images[2].persons[1], 0, 50, 29, 150, 5);
  EXPECT_EQ(split.summary.boxes, 8);
  EXPECT_EQ(split.summary.skipped_degenerate_boxes, 0);
  ASSERT_EQ(split.queries.size(), 2u);
  const SearchQuery& q0 = split.queries[0];
  EXPECT_EQ(q0.pid, "479");
  EXPECT_EQ(q0.image, 0);
  expect_box(q0.box, 1750, 407, 1836, 624);
  EXPECT_EQ(q0.gallery, std::vector<int32_t>({1, 2, 3}));  // the query frame is never in the gallery
  expect_positives(q0.positives, {{1, {300, 200, 381, 401}}, {2, {1700, 400, 1790, 611}}});
  const SearchQuery& q1 = split.queries[1];
  EXPECT_EQ(q1.pid, "5");
  EXPECT_EQ(q1.image, 2);
  expect_box(q1.box, 0, 50, 29, 150);  // x = -10.5 clipped
  EXPECT_EQ(q1.gallery, std::vector<int32_t>({0, 1, 3}));
  // Frame 3 holds id 5 twice: its first box is the ground truth.
  expect_positives(q1.positives, {{0, {100, 100, 140, 190}}, {3, {500, 300, 545, 395}}});
}

TEST(Prw, TestSplitCrossCamera) {
  const SearchSplit split = load_prw_test(prw_root(), /*ignore_cam_id=*/false);
  ASSERT_EQ(split.queries.size(), 2u);
  // Both queries come from camera 1: frames 0 and 2 leave the galleries.
  EXPECT_EQ(split.queries[0].gallery, std::vector<int32_t>({1, 3}));
  expect_positives(split.queries[0].positives, {{1, {300, 200, 381, 401}}});
  EXPECT_EQ(split.queries[1].gallery, std::vector<int32_t>({1, 3}));
  expect_positives(split.queries[1].positives, {{3, {500, 300, 545, 395}}});
}

TEST(Prw, QueryInfoParsing) {
  const auto crlf = parse_prw_query_info(
      "479 1750.0896 407.5410 86.3067 216.9330 c1s3_016471\r\n"
      "5 -10.5 50 40 100 c1s3_016500\r\n\r\n",
      "q.txt");
  ASSERT_EQ(crlf.size(), 2u);
  EXPECT_EQ(crlf[0].pid, 479);
  EXPECT_EQ(crlf[0].frame, "c1s3_016471");  // no trailing CR
  EXPECT_EQ(crlf[0].xywh, (std::array<double, 4>{1750.0896, 407.5410, 86.3067, 216.9330}));
  EXPECT_EQ(crlf[1].line, 2);
  const auto lf =
      parse_prw_query_info("479 1 2 3 4 c1s3_016471\n5\t1  2 3 4 c1s3_016500", "q.txt");  // no final newline
  ASSERT_EQ(lf.size(), 2u);
  EXPECT_EQ(lf[1].frame, "c1s3_016500");
  EXPECT_TRUE(parse_prw_query_info("", "q.txt").empty());

  expect_error([] { parse_prw_query_info("479 1 2 3 4 a\r\n479 1 2 3 b\r\n", "q.txt"); },
               {"q.txt:2: expected 6 fields 'pid x y w h frame', found 5"});
  expect_error([] { parse_prw_query_info("479 1 2 3 4 a b\n", "q.txt"); }, {"q.txt:1: expected 6 fields"});
  expect_error([] { parse_prw_query_info("\n\nx479 1 2 3 4 a\n", "q.txt"); },
               {"q.txt:3: identity 'x479' is not an integer"});
  expect_error([] { parse_prw_query_info("479 1 nan 3 4 a\n", "q.txt"); }, {"q.txt:1: y 'nan' is not a finite number"});
  expect_error([] { parse_prw_query_info("479 1 2 3e999 4 a\n", "q.txt"); },
               {"q.txt:1: w '3e999' is not a finite number"});
  expect_error([] { parse_prw_query_info("-2 1 2 3 4 a\n", "q.txt"); },
               {"q.txt:1: identity -2 is not a labeled person"});
  expect_error([] { parse_prw_query_info("7 1 2 0 4 a\n", "q.txt"); }, {"q.txt:1: the query box has no area"});
}

TEST(Prw, ErrorsNameTheFile) {
  {
    Scratch copy(prw_root());
    write_bytes(copy.path("query_info.txt"), "479 1 2 3 4 c1s3_016471\r\n5 1 2 3 4 c9s9_000000\r\n");
    expect_error([&] { load_prw_test(copy.path()); },
                 {copy.path("query_info.txt") + ":2: query frame 'c9s9_000000' is not a test frame"});
  }
  {
    Scratch copy(prw_root());
    ::remove(copy.path("annotations/c2s3_020000.jpg.mat").c_str());
    expect_error([&] { load_prw_test(copy.path()); }, {copy.path("annotations/c2s3_020000.jpg.mat") +
                                                       ": file not found (expected the PRW annotation of frame"});
  }
  {
    Scratch copy(prw_root());
    ::remove(copy.path("frame_train.mat").c_str());
    expect_error(
        [&] { load_prw_train(copy.path()); },
        {copy.path("frame_train.mat") + ": file not found (expected the PRW frame list, variable img_index_train)"});
  }
  {
    Scratch copy(prw_root());
    const std::string bytes = read_bytes(copy.path("annotations/c1s3_016471.jpg.mat"));
    write_bytes(copy.path("annotations/c1s3_016471.jpg.mat"), bytes.substr(0, bytes.size() - 20));
    expect_error([&] { load_prw_test(copy.path()); }, {copy.path("annotations/c1s3_016471.jpg.mat") + ": "});
  }
}

// ---------------------------------------------------------------------------------------
// Robustness: seeded byte mutations of valid files only ever raise std::exception.

TEST(DataLoaders, MutatedMatFilesOnlyThrow) {
  struct Target {
    std::string file;
    std::function<void(const std::string&)> read;
  };
  const std::vector<Target> targets = {
      {cuhk_file("annotation/Images.mat"), [](const std::string& p) { read_cuhk_images(p); }},
      {cuhk_file("annotation/pool.mat"), [](const std::string& p) { read_cuhk_pool(p); }},
      {cuhk_file("annotation/test/train_test/Train.mat"), [](const std::string& p) { read_cuhk_train(p); }},
      {cuhk_file("annotation/test/train_test/TestG50.mat"),
       [](const std::string& p) { read_cuhk_protocol(p, {"TestG50"}); }},
      {prw_file("annotations/c1s1_000151.jpg.mat"), [](const std::string& p) { read_prw_annotation(p); }},
      {prw_file("annotations/c1s3_016500.jpg.mat"), [](const std::string& p) { read_prw_annotation(p); }},
      {prw_file("frame_test.mat"), [](const std::string& p) { read_prw_frame_list(p, "img_index_test"); }},
  };
  Scratch dir;
  const std::string path = dir.path("mutant.mat");
  std::mt19937 rng(20240601);
  int thrown = 0, parsed = 0;
  for (const Target& target : targets) {
    const std::string original = read_bytes(target.file);
    ASSERT_GT(original.size(), 128u);
    for (int round = 0; round < 60; ++round) {
      std::string bytes = original;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        // Mostly past the 128-byte header (which only gates v5 files), sometimes in it.
        const size_t lo = (rng() % 10 == 0 || bytes.size() <= 129) ? 0 : 128;
        const size_t at = lo + rng() % (bytes.size() - lo);
        switch (rng() % 5) {
          case 0:
            bytes[at] = static_cast<char>(rng());
            break;  // random byte
          case 1:
            bytes[at] = static_cast<char>(bytes[at] ^ (1u << (rng() % 8)));
            break;  // bit flip
          case 2:
            bytes[at] = static_cast<char>(rng() % 2 ? 0xff : 0x00);
            break;  // extremes
          case 3:
            bytes.resize(std::max<size_t>(at, 1));
            break;  // truncate
          default:
            bytes.insert(at, std::string(1 + rng() % 16, static_cast<char>(rng())));
            break;  // insert
        }
        if (bytes.size() < 2) break;
      }
      write_bytes(path, bytes);
      try {
        target.read(path);
        ++parsed;
      } catch (const std::exception& e) {
        ++thrown;
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(path, 0), 0u) << "error does not start with the path: " << message;
      } catch (...) {
        ADD_FAILURE() << "a non-std::exception escaped for a mutant of " << target.file;
      }
    }
  }
  EXPECT_EQ(thrown + parsed, 7 * 60);
  EXPECT_GT(thrown, 0);
}
