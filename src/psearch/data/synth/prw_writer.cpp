// PRW layout: frames/<name>.jpg, annotations/<name>.jpg.mat (variable box_new, a few
// older-style files use anno_file or anno_previous), frame_train.mat / frame_test.mat
// (img_index_train / img_index_test: Nx1 cells of names without .jpg) and query_info.txt
// ("pid x y w h frame", 4 decimals, CRLF).
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "psearch/data/synth/files.h"
#include "psearch/data/synth/mat_writer.h"
#include "psearch/data/synth/writers.h"

namespace psearch::data::synth {
namespace {

namespace fs = std::filesystem;

constexpr double kUnlabeledId = -2;  // PRW's id for a person without identity
constexpr double kQueryVisibility = 0.7;  // queries are people one can actually see

/// Rows [id, x, y, w, h] as a Kx5 double matrix (MATLAB stores it column by column).
MatBuilder::Value box_matrix(MatBuilder& mb, const Plan& plan, const FramePlan& f) {
  const size_t k = f.persons.size();
  std::vector<double> m(k * 5);
  for (size_t i = 0; i < k; ++i) {
    const PersonInstance& p = f.persons[i];
    m[i] = p.identity >= 0 ? double(plan.identities[p.identity].pid) : kUnlabeledId;
    m[k + i] = p.box.x, m[2 * k + i] = p.box.y, m[3 * k + i] = p.box.width, m[4 * k + i] = p.box.height;
  }
  return mb.matrix(k, 5, m);
}

/// Some real annotation files name their matrix anno_file or anno_previous instead of
/// box_new; a few of ours do too (at least one of each) so that loaders handle all three.
std::map<size_t, std::string> alternate_names(const Plan& plan, uint64_t seed) {
  Rng rng(mix_seed(seed, 7));
  std::vector<size_t> idx(plan.frames.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  rng.shuffle(idx);
  const size_t n = std::min(idx.size(), std::max<size_t>(2, idx.size() / 25));
  std::map<size_t, std::string> names;
  for (size_t k = 0; k < n; ++k) names[idx[k]] = k % 2 ? "anno_previous" : "anno_file";
  return names;
}

void write_frame_lists(const Plan& plan, const fs::path& root) {
  std::vector<std::string> train, test;
  for (const auto& f : plan.frames) (f.test ? test : train).push_back(f.name);
  MatBuilder mb;
  write_mat_file(root / "frame_train.mat", {{"img_index_train", mb.text_column(train)}});
  write_mat_file(root / "frame_test.mat", {{"img_index_test", mb.text_column(test)}});
}

struct Sighting {
  size_t frame, person;
};

/// One query per (test identity, camera): the most visible sighting in that camera, if it
/// is visible enough. Identities are in >= 2 test cameras by construction, so every
/// query has ground truth in another camera.
std::vector<Sighting> choose_queries(const Plan& plan) {
  std::map<int64_t, std::map<int, Sighting>> best;  // pid -> camera -> sighting
  for (size_t fi = 0; fi < plan.frames.size(); ++fi) {
    const FramePlan& f = plan.frames[fi];
    if (!f.test) continue;
    for (size_t pi = 0; pi < f.persons.size(); ++pi) {
      const PersonInstance& p = f.persons[pi];
      if (p.identity < 0 || p.visible < kQueryVisibility) continue;
      auto& slot = best[plan.identities[p.identity].pid];
      const auto it = slot.find(f.camera);
      if (it == slot.end() || plan.frames[it->second.frame].persons[it->second.person].visible < p.visible)
        slot[f.camera] = {fi, pi};
    }
  }
  std::vector<Sighting> out;
  for (const auto& [pid, per_camera] : best)
    for (const auto& [camera, s] : per_camera) out.push_back(s);
  return out;
}

void write_queries(const Plan& plan, const fs::path& root, SynthStats& stats) {
  std::string text;
  for (const Sighting& s : choose_queries(plan)) {
    const FramePlan& f = plan.frames[s.frame];
    const PersonInstance& p = f.persons[s.person];
    char line[160];
    std::snprintf(line, sizeof line, "%lld %.4f %.4f %.4f %.4f %s\r\n",
                  static_cast<long long>(plan.identities[p.identity].pid), p.box.x, p.box.y, p.box.width,
                  p.box.height, f.name.c_str());
    text += line;
    ++stats.queries;
  }
  write_file_atomically(root / "query_info.txt", text);
}

}  // namespace

void write_prw_annotations(const Plan& plan, const fs::path& root, uint64_t seed, SynthStats& stats) {
  fs::create_directories(root / "annotations");
  const auto alternates = alternate_names(plan, seed);
  for (size_t i = 0; i < plan.frames.size(); ++i) {
    const FramePlan& f = plan.frames[i];
    const auto alt = alternates.find(i);
    const std::string variable = alt == alternates.end() ? "box_new" : alt->second;
    if (alt != alternates.end()) stats.alternate_variables.push_back(f.name + ".jpg.mat:" + variable);
    MatBuilder mb;
    write_mat_file(root / "annotations" / (f.name + ".jpg.mat"), {{variable, box_matrix(mb, plan, f)}});
  }
  write_frame_lists(plan, root);
  write_queries(plan, root, stats);
}

}  // namespace psearch::data::synth
