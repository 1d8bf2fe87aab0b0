// The YAML config system (src/psearch/config): inheritance, overrides, the one-line
// errors, serialisation, and the repository's paper configs (configs/*.yaml).
#include <ftw.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "psearch/config/config.h"
#include "test_util.h"

namespace fs = std::filesystem;
using psearch::config::Config;
using psearch::config::ConfigError;
using psearch::config::load_config;
using psearch::config::parse_config;
using psearch::config::to_yaml;

namespace {

using psearch::test::TempDir;

/// what() of the ConfigError thrown by f; fails the test if f throws nothing or another type.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected ConfigError, nothing was thrown";
  return "";
}

/// The repository root (holding configs/ and docs/): $PSEARCH_SOURCE_DIR, else the first
/// parent of the working directory or of the fixtures directory that has configs/base.yaml.
fs::path source_dir() {
  std::vector<fs::path> starts;
  if (const char* env = std::getenv("PSEARCH_SOURCE_DIR"); env && *env) starts.emplace_back(env);
  starts.push_back(fs::current_path());
  starts.push_back(fs::absolute(psearch::test::fixtures_dir()));
  for (fs::path p : starts) {
    for (; !p.empty(); p = p.parent_path()) {
      if (fs::exists(p / "configs" / "base.yaml") && fs::exists(p / "src" / "psearch" / "config")) return p;
      if (p == p.parent_path()) break;
    }
  }
  return {};
}

std::string repo_config(const std::string& name) {
  const fs::path root = source_dir();
  EXPECT_FALSE(root.empty()) << "repository root not found; set PSEARCH_SOURCE_DIR";
  return (root / "configs" / name).string();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Reading, inheritance and overrides

TEST(Config, EmptyTextGivesTheDefaults) {
  EXPECT_EQ(parse_config("", "empty"), Config{});
  EXPECT_EQ(parse_config("train:\nmodel:\n  rpn:\n", "empty sections"), Config{});
}

TEST(Config, ReadsEveryKindOfValue) {
  const Config c = parse_config(R"(
model:
  type: oim
  two_stage:
    rpn:
      anchor_sizes: [[16, 32], [64, 128]]
      aspect_ratios: [[1.0, 2.0], [0.5, 2.0]]
      pre_nms_top_n_test: 1000
train:
  lr: 1.5e-2
  loss_weights: {loss_box_reg: 10, loss_reid: 0.5}
  flip: false
  milestones: [3, 7]
  init_from: runs/nae/checkpoint.pt
)", "text");
  EXPECT_EQ(c.model.type, "oim");
  EXPECT_EQ(c.model.two_stage.rpn.anchor_sizes, (std::vector<std::vector<double>>{{16, 32}, {64, 128}}));
  EXPECT_EQ(c.model.two_stage.rpn.pre_nms_top_n_test, 1000);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.015);
  EXPECT_FALSE(c.train.flip);
  EXPECT_EQ(c.train.milestones, (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(c.train.init_from, "runs/nae/checkpoint.pt");
  EXPECT_EQ(c.train.loss_weights, (psearch::config::LossWeights{{"loss_box_reg", 10.0}, {"loss_reid", 0.5}}));
  EXPECT_EQ(c.model.two_stage.rpn.nms_thresh, Config{}.model.two_stage.rpn.nms_thresh);  // untouched keys keep defaults
}

TEST(Config, BaseIsMergedDeeplyAndChildWins) {
  TempDir dir;
  dir.write("base.yaml", R"(
model:
  two_stage:
    rpn:
      nms_thresh: 0.6
      fg_iou_thresh: 0.8
train:
  lr: 0.01
  milestones: [5, 8]
  length: 10
)");
  // Relative to the child's directory, not the working directory.
  const std::string child = dir.write("sub/child.yaml", R"(
_base_: ../base.yaml
model:
  two_stage:
    rpn:
      fg_iou_thresh: 0.75
train:
  lr: 0.02
  milestones: [3]
)");
  const Config c = load_config(child);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.02);                 // child wins
  EXPECT_EQ(c.train.length, 10);                      // inherited
  EXPECT_EQ(c.train.milestones, std::vector<int64_t>{3});  // lists are replaced, not merged
  EXPECT_DOUBLE_EQ(c.model.two_stage.rpn.fg_iou_thresh, 0.75);  // nested sections merge key by key
  EXPECT_DOUBLE_EQ(c.model.two_stage.rpn.nms_thresh, 0.6);
  EXPECT_DOUBLE_EQ(c.model.two_stage.rpn.bg_iou_thresh, Config{}.model.two_stage.rpn.bg_iou_thresh);

  // Three levels, and a list of bases (later ones win).
  dir.write("other.yaml", "train:\n  lr: 0.05\n  batch_size: 3\n");
  const std::string grandchild =
      dir.write("sub/deeper/grandchild.yaml", "_base_: [../child.yaml, ../../other.yaml]\ntrain:\n  batch_size: 4\n");
  const Config g = load_config(grandchild);
  EXPECT_DOUBLE_EQ(g.train.lr, 0.05);
  EXPECT_EQ(g.train.batch_size, 4);
  EXPECT_EQ(g.train.milestones, std::vector<int64_t>{3});
  EXPECT_DOUBLE_EQ(g.model.two_stage.rpn.nms_thresh, 0.6);
}

TEST(Config, OverridesApplyInOrderAfterTheFiles) {
  TempDir dir;
  const std::string file = dir.write("c.yaml", "train:\n  lr: 0.01\n  milestones: [16]\n");
  const Config c = load_config(file, {"train.lr=0.003", "train.milestones=[8, 10]", "model.type=nae_plus",
                                      "model.two_stage.rpn.anchor_sizes=[[8, 16]]", "train.lr=0.004",
                                      "dataset.root=/data/prw frames", "train.init_from="});
  EXPECT_DOUBLE_EQ(c.train.lr, 0.004);
  EXPECT_EQ(c.train.milestones, (std::vector<int64_t>{8, 10}));
  EXPECT_EQ(c.model.type, "nae_plus");
  EXPECT_EQ(c.model.two_stage.rpn.anchor_sizes, (std::vector<std::vector<double>>{{8, 16}}));
  EXPECT_EQ(c.dataset.root, "/data/prw frames");
  EXPECT_EQ(c.train.init_from, "");
  // Text configs (a checkpoint's copy) take overrides too.
  EXPECT_EQ(parse_config("", "text", {"inference.nms_thresh=0.5"}).inference.nms_thresh, 0.5);
}

TEST(Config, MalformedOverridesAreNamed) {
  EXPECT_EQ(error_of([] { parse_config("", "text", {"train.lr"}); }),
            "override 'train.lr': expected KEY=VALUE with a dotted key, e.g. train.lr=0.003");
  EXPECT_EQ(error_of([] { parse_config("", "text", {"train..lr=1"}); }),
            "override 'train..lr=1': expected KEY=VALUE with a dotted key, e.g. train.lr=0.003");
  EXPECT_EQ(error_of([] { parse_config("train:\n  lr: 0.1\n", "text", {"train.lr.x=1"}); }),
            "override 'train.lr.x=1': 'train.lr' is a value, not a section");
  EXPECT_EQ(error_of([] { parse_config("", "text", {"train.lr.x=1"}); }),
            "override 'train.lr.x=1': key 'train.lr' must be a finite number, got {x: 1}");
  EXPECT_EQ(error_of([] { parse_config("", "text", {"train=3"}); }),
            "override 'train=3': key 'train' must be a section (a mapping of keys), got '3'");
  EXPECT_EQ(error_of([] { parse_config("", "text", {"train.lrr=0.1"}); }),
            "override 'train.lrr=0.1': unknown key 'train.lrr' (did you mean 'train.lr'?)");
}

// ---------------------------------------------------------------------------------------
// One-line errors

TEST(Config, UnknownKeysAreRejectedWithASuggestion) {
  TempDir dir;
  const std::string f1 = dir.write("a.yaml", "train:\n  lrr: 0.1\n");
  EXPECT_EQ(error_of([&] { load_config(f1); }), f1 + ": unknown key 'train.lrr' (did you mean 'train.lr'?)");

  const std::string f2 = dir.write("b.yaml", "model:\n  two_stage:\n    rpn:\n      nms_tresh: 0.5\n");
  EXPECT_EQ(error_of([&] { load_config(f2); }),
            f2 + ": unknown key 'model.two_stage.rpn.nms_tresh' (did you mean 'model.two_stage.rpn.nms_thresh'?)");

  const std::string f3 = dir.write("c.yaml", "trian:\n  lr: 0.1\n");
  EXPECT_EQ(error_of([&] { load_config(f3); }), f3 + ": unknown key 'trian' (did you mean 'train'?)");

  // A key in the wrong section points to where it lives.
  const std::string f4 = dir.write("d.yaml", "rpn:\n  nms_thresh: 0.5\n");
  EXPECT_EQ(error_of([&] { load_config(f4); }), f4 + ": unknown key 'rpn' (did you mean 'model.two_stage.rpn'?)");

  // An abbreviation of a key.
  EXPECT_EQ(error_of([] { parse_config("version: 2\nmodel:\n  two_stage:\n    rpn:\n      nms: 0.5\n", "x"); }),
            "x: unknown key 'model.two_stage.rpn.nms' (did you mean 'model.two_stage.rpn.nms_thresh'?)");
  // A key that lives in other sections.
  EXPECT_EQ(error_of([] { parse_config("train:\n  nms_thresh: 0.5\n", "x"); }),
            "x: unknown key 'train.nms_thresh' (did you mean 'model.two_stage.rpn.nms_thresh' or 'inference.nms_thresh'?)");

  // Nothing close: the valid keys of that section are listed.
  const std::string f5 = dir.write("e.yaml", "dataset:\n  xyzzy: 1\n");
  EXPECT_EQ(error_of([&] { load_config(f5); }),
            f5 + ": unknown key 'dataset.xyzzy' (valid keys in 'dataset': name, root, gallery_size, ignore_cam_id)");
}

TEST(Config, ErrorsNameTheFileTheKeyCameFrom) {
  TempDir dir;
  const std::string base = dir.write("base.yaml", "train:\n  momentun: 0.9\n");
  const std::string child = dir.write("child.yaml", "_base_: base.yaml\ntrain:\n  lr: 0.1\n");
  EXPECT_EQ(error_of([&] { load_config(child); }),
            base + ": unknown key 'train.momentun' (did you mean 'train.momentum'?)");

  const std::string bad_base = dir.write("bad_base.yaml", "train:\n  gamma: -1\n");
  const std::string child2 = dir.write("child2.yaml", "_base_: bad_base.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(child2); }), bad_base + ": key 'train.gamma' must be > 0, got -1");
}

TEST(Config, WrongTypesAreRejected) {
  const auto err = [](const std::string& text) { return error_of([&] { parse_config(text, "x.yaml"); }); };
  EXPECT_EQ(err("train:\n  lr: abc\n"), "x.yaml: key 'train.lr' must be a finite number, got 'abc'");
  EXPECT_EQ(err("train:\n  lr: [1]\n"), "x.yaml: key 'train.lr' must be a finite number, got [1]");
  EXPECT_EQ(err("train:\n  batch_size: 2.5\n"), "x.yaml: key 'train.batch_size' must be an integer, got '2.5'");
  EXPECT_EQ(err("train:\n  flip: maybe\n"), "x.yaml: key 'train.flip' must be true or false, got 'maybe'");
  EXPECT_EQ(err("train:\n  milestones: 16\n"), "x.yaml: key 'train.milestones' must be a list of integers, got '16'");
  EXPECT_EQ(err("train:\n  milestones: [16, x]\n"),
            "x.yaml: key 'train.milestones' must be a list of integers, got [16, x]");
  EXPECT_EQ(err("model:\n  two_stage:\n    rpn:\n      anchor_sizes: [32, 64]\n"),
            "x.yaml: key 'model.two_stage.rpn.anchor_sizes' must be a list of lists of finite numbers, got [32, 64]");
  EXPECT_EQ(err("train:\n  loss_weights: [1, 2]\n"),
            "x.yaml: key 'train.loss_weights' must be a mapping of names to finite numbers, got [1, 2]");
  EXPECT_EQ(err("dataset:\n  root: [a, b]\n"), "x.yaml: key 'dataset.root' must be a string, got [a, b]");
  EXPECT_EQ(err("model: 3\n"), "x.yaml: key 'model' must be a section (a mapping of keys), got '3'");
  EXPECT_EQ(err("model:\n  type: nea\n"),
            "x.yaml: key 'model.type' must be one of nae, nae_plus, oim, pcnet, separate, got 'nea' (did you mean 'nae'?)");
  EXPECT_EQ(err("- 1\n- 2\n"), "x.yaml: a config must be a mapping of sections (model:, train:, ...), got [1, 2]");
}

TEST(Config, OutOfRangeValuesAreRejected) {
  const auto err = [](const std::string& text) { return error_of([&] { parse_config(text, "x.yaml"); }); };
  EXPECT_EQ(err("model:\n  two_stage:\n    rpn:\n      bg_iou_thresh: 0.8\n"),
            "x.yaml: key 'model.two_stage.rpn.bg_iou_thresh' must be in [0, fg_iou_thresh], got 0.8");
  EXPECT_EQ(err("train:\n  milestones: [16, 8]\n"),
            "x.yaml: key 'train.milestones' must be increasing, each in [1, length (22)], got [16, 8]");
  EXPECT_EQ(err("train:\n  min_size: 1600\n"), "x.yaml: key 'train.max_size' must be >= min_size (1600), got 1500");
  EXPECT_EQ(err("model:\n  two_stage:\n    rpn:\n      aspect_ratios: [[1.0], [1.0]]\n"),
            "x.yaml: key 'model.two_stage.rpn.aspect_ratios' must be one list per feature map, as many as "
            "anchor_sizes (1), got 2 lists");
  // Loss weights are checked against the configured model's loss names.
  EXPECT_EQ(err("train:\n  loss_weights: {loss_boxx: 2}\n"),
            "x.yaml: key 'train.loss_weights.loss_boxx' must be a loss of model type 'nae' (loss_objectness, "
            "loss_rpn_box_reg, loss_box_reg, loss_detection, loss_reid), got 'loss_boxx'");
  EXPECT_EQ(err("train:\n  loss_weights: {loss_reid: -1}\n"),
            "x.yaml: key 'train.loss_weights.loss_reid' must be >= 0, got -1");
  // A cross-field check: NAE+ labels the pixels of the conv5 map, half the RoIAlign grid.
  EXPECT_EQ(err("model:\n  type: nae_plus\n  two_stage:\n    embedding: {pixel_size: 5}\n"),
            "x.yaml: key 'model.two_stage.embedding.pixel_size' must be half of "
            "model.two_stage.roi_heads.pooler_resolution (14) for nae_plus, got 5");
  EXPECT_EQ(err("version: 3\n"), "x.yaml: key 'version' must be 2 (or absent: 1, migrated), got 3");
  EXPECT_EQ(err("inference:\n  nms_thresh: 1.5\n"), "x.yaml: key 'inference.nms_thresh' must be in [0, 1], got 1.5");
}

TEST(Config, FileProblemsNameTheFile) {
  const std::string missing = "/nonexistent/psearch/none.yaml";
  EXPECT_EQ(error_of([&] { load_config(missing); }), missing + ": cannot open config file (No such file or directory)");

  TempDir dir;
  const std::string child = dir.write("child.yaml", "_base_: parent.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(child); }),
            child + ": _base_ 'parent.yaml' not found (" + (dir.path() / "parent.yaml").string() + ")");

  const std::string broken = dir.write("broken.yaml", "train:\n  lr: [0.1\n");
  const std::string msg = error_of([&] { load_config(broken); });
  EXPECT_EQ(msg.rfind(broken + ":3:", 0), 0u) << msg;  // file:line:column
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;

  const std::string a = dir.write("a.yaml", "_base_: b.yaml\n");
  dir.write("b.yaml", "_base_: a.yaml\n");
  const std::string cycle = error_of([&] { load_config(a); });
  EXPECT_NE(cycle.find("_base_ cycle"), std::string::npos) << cycle;

  EXPECT_EQ(error_of([&] { parse_config("_base_: {a: 1}\n", "x.yaml"); }),
            "x.yaml: key '_base_' must be a path or a list of paths, got {a: 1}");
}

TEST(Config, ErrorsAreOneLine) {
  TempDir dir;
  const std::string broken = dir.write("broken.yaml", "a: [\n\n\n");
  for (const std::string& m : {error_of([&] { load_config(broken); }),
                               error_of([] { parse_config("dataset:\n  xyzzy: 1\n", "x"); })}) {
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// ---------------------------------------------------------------------------------------
// Version 1 files (before the model registry) are migrated

TEST(Config, Version1LayoutIsMigrated) {
  TempDir dir;
  // The layout of configs and checkpoints written before version 2.
  const std::string old = dir.write("v1.yaml", R"(
model:
  type: nae_plus
  rpn: {nms_thresh: 0.6}
  roi_heads: {pooler_resolution: 8}
  embedding: {dim: 64, fuse_res4: false, pixel_size: 4}
train:
  loss_weights: {rpn_objectness: 1.0, rpn_box: 2.0, box: 10.0, detection: 1.0, reid: 0.5}
)");
  const Config c = load_config(old);
  EXPECT_EQ(c.version, 2);
  EXPECT_DOUBLE_EQ(c.model.two_stage.rpn.nms_thresh, 0.6);
  EXPECT_EQ(c.model.two_stage.roi_heads.pooler_resolution, 8);
  EXPECT_EQ(c.model.embedding_dim, 64);
  EXPECT_FALSE(c.model.two_stage.embedding.fuse_res4);
  EXPECT_EQ(c.model.two_stage.embedding.pixel_size, 4);
  EXPECT_EQ(c.train.loss_weights, (psearch::config::LossWeights{{"loss_objectness", 1.0},
                                                                {"loss_rpn_box_reg", 2.0},
                                                                {"loss_box_reg", 10.0},
                                                                {"loss_detection", 1.0},
                                                                {"loss_reid", 0.5}}));
  // Written back in the current layout, it reads the same without migration.
  const std::string text = to_yaml(c);
  EXPECT_NE(text.find("version: 2"), std::string::npos) << text;
  EXPECT_EQ(parse_config(text, "v2"), c);
  // Overrides use the current names; errors in migrated keys still name the file.
  EXPECT_DOUBLE_EQ(load_config(old, {"model.two_stage.rpn.nms_thresh=0.5"}).model.two_stage.rpn.nms_thresh, 0.5);
  const std::string bad = dir.write("bad_v1.yaml", "model:\n  rpn: {nms_thresh: 2}\n");
  EXPECT_EQ(error_of([&] { load_config(bad); }), bad + ": key 'model.two_stage.rpn.nms_thresh' must be in [0, 1], got 2");
  // A version-2 file does not accept the old names.
  EXPECT_EQ(error_of([] { parse_config("version: 2\nmodel:\n  rpn: {nms_thresh: 0.5}\n", "x"); }),
            "x: unknown key 'model.rpn' (did you mean 'model.two_stage.rpn'?)");
}

// ---------------------------------------------------------------------------------------
// Serialisation

TEST(Config, RoundTripsThroughYaml) {
  Config c;
  c.model.type = "nae_plus";
  c.model.two_stage.rpn.anchor_sizes = {{8.5, 16}, {1.0 / 3.0, 1e-7}};
  c.model.two_stage.rpn.aspect_ratios = {{0.5, 2.0}, {2.0, 0.1}};
  c.train.loss_weights = {{"loss_box_reg", 10.0}, {"loss_detection", 0.1 + 0.2}};
  c.train.lr = 0.1 + 0.2;  // not exactly 0.3: every digit must survive
  c.train.milestones = {1, 2, 3};
  c.train.flip = false;
  c.train.init_from = "runs/x: \"quoted\" #not a comment";
  c.dataset.root = "data/CUHK SYSU/ü";
  c.dataset.name = "cuhk-sysu";
  c.dataset.gallery_size = 4000;
  const std::string text = to_yaml(c);
  const Config back = parse_config(text, "round trip");
  EXPECT_EQ(back, c) << text;
  EXPECT_EQ(back.train.lr, c.train.lr);
  EXPECT_EQ(back.model.two_stage.rpn.anchor_sizes, c.model.two_stage.rpn.anchor_sizes);
  EXPECT_EQ(back.train.init_from, c.train.init_from);
  EXPECT_EQ(to_yaml(back), text);
  // Every key is written, so the text alone reproduces the config.
  for (const auto& key : psearch::config::describe_keys()) {
    const std::string last = key.path.substr(key.path.rfind('.') + 1);
    EXPECT_NE(text.find(last + ":"), std::string::npos) << key.path;
  }
}

TEST(Config, DescribeKeysListsEveryKeyWithDocs) {
  std::set<std::string> paths;
  for (const auto& key : psearch::config::describe_keys()) {
    EXPECT_TRUE(paths.insert(key.path).second) << "duplicate " << key.path;
    EXPECT_FALSE(key.doc.empty()) << key.path;
    EXPECT_EQ(key.is_section, key.default_value.empty()) << key.path;
  }
  EXPECT_TRUE(paths.count("train.lr"));
  EXPECT_TRUE(paths.count("model.two_stage.rpn.post_nms_top_n_test"));
  EXPECT_TRUE(paths.count("model.oim"));
}

TEST(Config, DocsDescribeEveryKey) {
  const fs::path root = source_dir();
  ASSERT_FALSE(root.empty()) << "repository root not found; set PSEARCH_SOURCE_DIR";
  std::ifstream in(root / "docs" / "config.md");
  ASSERT_TRUE(in) << "docs/config.md missing";
  std::stringstream docs;
  docs << in.rdbuf();
  for (const auto& key : psearch::config::describe_keys()) {
    EXPECT_NE(docs.str().find("`" + key.path + "`"), std::string::npos) << key.path << " is not in docs/config.md";
  }
}

// ---------------------------------------------------------------------------------------
// The paper configs (NAE, Chen et al. CVPR 2020, Sec. 4.2)

TEST(Config, RepositoryConfigsLoadAndRoundTrip) {
  for (const char* name : {"base.yaml", "nae_prw.yaml", "nae_cuhk.yaml", "oim_prw.yaml", "oim_cuhk.yaml",
                           "nae_plus_prw.yaml", "nae_plus_cuhk.yaml", "pcnet_base.yaml", "pcnet_prw.yaml",
                           "pcnet_cuhk.yaml", "pcnet_dagger_prw.yaml", "pcnet_light_prw.yaml",
                           "official/pcnet_prw.yaml", "official/pcnet_dagger_prw.yaml", "synthetic/pcnet_prw_small.yaml",
                           "synthetic/pcnet_light_prw_small.yaml", "synthetic/pcnet_dagger_prw_small.yaml"}) {
    SCOPED_TRACE(name);
    const Config c = load_config(repo_config(name));
    EXPECT_EQ(parse_config(to_yaml(c), "round trip"), c);
  }
}

TEST(Config, PcnetConfigsFollowThePaper) {
  // PCNet paper Sec. 4.2 and 4.4, Table 4.
  const Config prw = load_config(repo_config("pcnet_prw.yaml"));
  EXPECT_EQ(prw.model.type, "pcnet");
  EXPECT_EQ(prw.train.batch_size, 4);
  EXPECT_DOUBLE_EQ(prw.train.lr, 1e-4);
  EXPECT_EQ(prw.train.unit, "iteration");
  EXPECT_EQ(prw.train.length, 70000);
  EXPECT_EQ(prw.train.milestones, std::vector<int64_t>{60000});
  EXPECT_EQ(prw.train.max_size, 1333);
  EXPECT_EQ(prw.train.min_size, 800);
  EXPECT_EQ(prw.model.embedding_dim, 256);
  EXPECT_EQ(prw.model.one_stage.head_channels, 256);
  EXPECT_EQ(prw.model.one_stage.aspect_ratios, std::vector<std::vector<double>>(5, {2.0}));
  EXPECT_EQ(prw.model.one_stage.distance_sets, 3);
  EXPECT_DOUBLE_EQ(prw.model.one_stage.triplet_margin, 0.5);
  const Config cuhk = load_config(repo_config("pcnet_cuhk.yaml"));
  EXPECT_DOUBLE_EQ(cuhk.train.lr, 5e-5);
  EXPECT_EQ(cuhk.train.length, 60000);
  EXPECT_EQ(cuhk.train.milestones, std::vector<int64_t>{50000});
  const Config dagger = load_config(repo_config("pcnet_dagger_prw.yaml"));
  EXPECT_EQ(dagger.model.one_stage.anchor_sizes.front().size() * dagger.model.one_stage.aspect_ratios.front().size(), 4u);
  const Config light = load_config(repo_config("pcnet_light_prw.yaml"));
  EXPECT_EQ(light.model.one_stage.head_channels, 64);
  const Config official = load_config(repo_config("official/pcnet_prw.yaml"));
  EXPECT_DOUBLE_EQ(official.train.loss_weights.at("loss_dist"), 0.0);
  EXPECT_EQ(official.model.one_stage.triplet, "official");
}

TEST(Config, RepositoryConfigsFollowThePaper) {
  const Config nae = load_config(repo_config("nae_prw.yaml"));
  EXPECT_EQ(nae.model.type, "nae");
  EXPECT_EQ(nae.train.batch_size, 5);
  EXPECT_EQ(nae.train.min_size, 900);
  EXPECT_EQ(nae.train.max_size, 1500);
  EXPECT_DOUBLE_EQ(nae.train.lr, 0.003);
  EXPECT_DOUBLE_EQ(nae.train.momentum, 0.9);
  EXPECT_DOUBLE_EQ(nae.train.weight_decay, 5e-4);
  EXPECT_EQ(nae.train.unit, "epoch");
  EXPECT_EQ(nae.train.length, 22);
  EXPECT_EQ(nae.train.warmup, 1);
  EXPECT_EQ(nae.train.milestones, std::vector<int64_t>{16});
  EXPECT_DOUBLE_EQ(nae.train.gamma, 0.1);
  EXPECT_EQ(nae.model.two_stage.rpn.post_nms_top_n_test, 300);
  EXPECT_DOUBLE_EQ(nae.inference.nms_thresh, 0.4);
  EXPECT_EQ(nae.model.two_stage.roi_heads.pooler_resolution, 14);
  EXPECT_EQ(nae.model.embedding_dim, 256);
  EXPECT_DOUBLE_EQ(nae.model.oim.momentum, 0.5);
  EXPECT_DOUBLE_EQ(nae.model.oim.scalar, 30.0);
  EXPECT_EQ(nae.model.oim.queue_size, 5000);
  EXPECT_EQ(nae.model.oim.num_pids, 482);
  EXPECT_EQ(nae.dataset.name, "prw");

  const Config cuhk = load_config(repo_config("nae_cuhk.yaml"));
  EXPECT_EQ(cuhk.dataset.name, "cuhk-sysu");
  EXPECT_EQ(cuhk.dataset.gallery_size, 100);
  EXPECT_EQ(cuhk.model.oim.num_pids, 5532);

  const Config oim = load_config(repo_config("oim_cuhk.yaml"));
  EXPECT_EQ(oim.model.type, "oim");
  Config oim_as_nae = oim;
  oim_as_nae.model.type = "nae";
  EXPECT_EQ(oim_as_nae, cuhk);  // OIM-base shares every other setting with NAE (Sec. 4.3)

  for (const char* name : {"nae_plus_prw.yaml", "nae_plus_cuhk.yaml"}) {
    const Config plus = load_config(repo_config(name));
    EXPECT_EQ(plus.model.type, "nae_plus");
    EXPECT_EQ(plus.train.length, 11);
    EXPECT_EQ(plus.train.milestones, std::vector<int64_t>{8});
    EXPECT_EQ(plus.model.two_stage.embedding.pixel_size, 7);
  }
}
