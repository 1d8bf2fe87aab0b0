// The torch.save reader against files written by Python's torch.save.
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <fstream>

#include "psearch/checkpoint/torch_file.h"
#include "test_util.h"

using psearch::checkpoint::load_tensors;
using psearch::checkpoint::TensorMap;
using psearch::test::fixture;

namespace {

// The same formula as fixtures_checkpoint.py.
at::Tensor base() { return at::arange(24, at::kFloat).reshape({4, 6}) * 0.5 - 3.0; }

void expect_contents(const TensorMap& m, const std::string& prefix) {
  auto get = [&](const std::string& k) {
    auto it = m.find(prefix + k);
    EXPECT_NE(it, m.end()) << "missing key " << prefix + k;
    return it == m.end() ? at::Tensor() : it->second;
  };
  EXPECT_TRUE(at::equal(get("f32"), base()));
  EXPECT_TRUE(at::equal(get("f64"), base().to(at::kDouble) / 3.0));
  EXPECT_TRUE(at::equal(get("f16"), base().to(at::kHalf)));
  EXPECT_TRUE(at::equal(get("bf16"), base().to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(get("i64"), at::arange(5, at::kLong) * int64_t{1000000007}));
  EXPECT_TRUE(at::equal(get("u8"), at::arange(200, 210, at::kLong).to(at::kByte)));
  EXPECT_TRUE(at::equal(get("i8"), at::arange(-5, 5, at::kLong).to(at::kChar)));
  EXPECT_TRUE(at::equal(get("b"), at::tensor({1, 0, 1}, at::kLong).to(at::kBool)));
  EXPECT_EQ(get("scalar").dim(), 0);
  EXPECT_FLOAT_EQ(get("scalar").item<float>(), 2.5f);
  EXPECT_EQ(get("empty").sizes(), (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(at::equal(get("view_rows"), base().slice(0, 1, 3)));
  EXPECT_TRUE(at::equal(get("view_t"), base().t()));
  EXPECT_FALSE(get("view_t").is_contiguous());
  EXPECT_TRUE(at::equal(get("param"), base()[0]));
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string error_of(const std::string& path) {
  return psearch::test::error_of([&] { load_tensors(path); });
}

}  // namespace

TEST(TorchFile, ReadsOrderedDictStateDict) {
  const TensorMap m = load_tensors(fixture("ckpt_state_dict.pth"));
  EXPECT_EQ(m.size(), 13u);
  expect_contents(m, "");
}

TEST(TorchFile, ReadsPickleProtocol4) { expect_contents(load_tensors(fixture("ckpt_protocol4.pth")), ""); }

TEST(TorchFile, FlattensNestedDictsAndLists) {
  const TensorMap m = load_tensors(fixture("ckpt_nested.pth"));
  expect_contents(m, "model.");
  EXPECT_TRUE(at::equal(m.at("lists.0"), base()));
  EXPECT_TRUE(at::equal(m.at("lists.1.0"), at::arange(5, at::kLong) * int64_t{1000000007}));
  EXPECT_EQ(m.count("iteration"), 0u);  // non-tensor leaves are not tensors
}

TEST(TorchFile, ViewsShareOneStorage) {
  const TensorMap m = load_tensors(fixture("ckpt_state_dict.pth"));
  EXPECT_TRUE(m.at("view_rows").is_alias_of(m.at("view_t")));
}

TEST(TorchFile, MissingFileNamesTheFile) {
  const std::string err = error_of("/nonexistent/weights.pth");
  EXPECT_NE(err.find("/nonexistent/weights.pth"), std::string::npos) << err;
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

TEST(TorchFile, LegacyFormatIsExplained) {
  const std::string err = error_of(fixture("ckpt_legacy.pth"));
  EXPECT_NE(err.find("legacy torch.save format"), std::string::npos) << err;
}

TEST(TorchFile, GarbageAndTruncatedFilesAreReported) {
  const std::string garbage = write_file("garbage.pth", "this is not a checkpoint at all");
  EXPECT_NE(error_of(garbage).find("no zip header"), std::string::npos);
  EXPECT_NE(error_of(write_file("empty.pth", "")).find("empty or truncated"), std::string::npos);

  std::ifstream in(fixture("ckpt_state_dict.pth"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string truncated = write_file("truncated.pth", bytes.substr(0, bytes.size() / 2));
  const std::string err = error_of(truncated);
  EXPECT_NE(err.find(truncated + ": corrupt checkpoint"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << "error should be one line: " << err;
}
