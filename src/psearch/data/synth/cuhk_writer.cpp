// CUHK-SYSU layout: Image/SSM/s<N>.jpg and annotation/ with Images.mat (Img: 1xM struct
// imname, nAppear, box{idlocate, ishard}), pool.mat (pool: Px1 cell of test image names),
// test/train_test/Train.mat (Train: Nx1 cell of 1x1 structs idname, nAppear,
// scene{imname, idlocate, ishard}) and test/train_test/TestG<N>.mat (TestG<N>: 1xQ struct
// Query{imname, idlocate, ishard, idname}, Gallery 1xN {imname, idlocate, ishard}), and the
// query subsets test/subset/Occlusion.mat (Occlusion1) and Resolution.mat (Test_Size).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

#include "psearch/data/synth/files.h"
#include "psearch/data/synth/mat_writer.h"
#include "psearch/data/synth/writers.h"

namespace psearch::data::synth {
namespace {

namespace fs = std::filesystem;

const std::vector<int> kGallerySizes = {50, 100, 500, 1000, 2000, 4000};
constexpr double kOccludedQuery = 0.7;       // occlusion-subset queries show less than this
constexpr double kLeastVisibleQuery = 0.25;  // ... but enough to be searched for

std::string image_name(const FramePlan& f) { return f.name + ".jpg"; }

std::string id_name(int64_t pid) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "p%05lld", static_cast<long long>(pid));
  return buf;
}

int image_number(const FramePlan& f) { return std::stoi(f.name.substr(1)); }

/// Frame indices ordered by image number (s1, s2, ...), the order of the real files.
std::vector<size_t> by_number(const Plan& plan, bool only_test) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < plan.frames.size(); ++i)
    if (!only_test || plan.frames[i].test) idx.push_back(i);
  std::sort(idx.begin(), idx.end(),
            [&](size_t a, size_t b) { return image_number(plan.frames[a]) < image_number(plan.frames[b]); });
  return idx;
}

using Value = MatBuilder::Value;

/// Values that many entries of one file share: image names, 0 and 1, [].
class Shared {
 public:
  Shared(MatBuilder& mb, const Plan& plan)
      : mb_(mb), plan_(plan), names_(plan.frames.size(), nullptr), zero_(mb.scalar(0)), one_(mb.scalar(1)),
        empty_(mb.empty()) {}

  Value image(size_t frame) {
    if (!names_[frame]) names_[frame] = mb_.text(image_name(plan_.frames[frame]));
    return names_[frame];
  }
  Value hard(const PersonInstance& p) const { return is_hard(p) ? one_ : zero_; }
  Value zero() const { return zero_; }
  Value empty() const { return empty_; }
  Value idlocate(const cv::Rect2d& b) { return mb_.matrix(1, 4, {b.x, b.y, b.width, b.height}); }

 private:
  MatBuilder& mb_;
  const Plan& plan_;
  std::vector<Value> names_;
  Value zero_, one_, empty_;
};

void write_images_mat(const Plan& plan, const fs::path& dir) {
  const std::vector<size_t> order = by_number(plan, false);
  MatBuilder mb;
  Shared shared(mb, plan);
  Value img = mb.structure(1, order.size(), {"imname", "nAppear", "box"});
  for (size_t k = 0; k < order.size(); ++k) {
    const FramePlan& f = plan.frames[order[k]];
    Value boxes = mb.structure(1, f.persons.size(), {"idlocate", "ishard"});
    for (size_t i = 0; i < f.persons.size(); ++i) {
      mb.set(boxes, "idlocate", i, shared.idlocate(f.persons[i].box));
      mb.set(boxes, "ishard", i, shared.hard(f.persons[i]));
    }
    mb.set(img, "imname", k, shared.image(order[k]));
    mb.set(img, "nAppear", k, mb.scalar(double(f.persons.size())));
    mb.set(img, "box", k, boxes);
  }
  write_mat_file(dir / "Images.mat", {{"Img", img}});
}

void write_pool(const Plan& plan, const fs::path& dir) {
  std::vector<std::string> names;
  for (size_t i : by_number(plan, true)) names.push_back(image_name(plan.frames[i]));
  MatBuilder mb;
  write_mat_file(dir / "pool.mat", {{"pool", mb.text_column(names)}});
}

struct Sighting {
  size_t frame, person;
};

/// Every sighting of each identity, in image-number order.
std::map<int, std::vector<Sighting>> sightings(const Plan& plan) {
  std::map<int, std::vector<Sighting>> out;
  for (size_t fi : by_number(plan, false))
    for (size_t pi = 0; pi < plan.frames[fi].persons.size(); ++pi)
      if (plan.frames[fi].persons[pi].identity >= 0) out[plan.frames[fi].persons[pi].identity].push_back({fi, pi});
  return out;
}

/// A 1xK struct array of (imname, idlocate, ishard) for the given sightings.
Value scene_struct(MatBuilder& mb, Shared& shared, const Plan& plan, const std::vector<Sighting>& list) {
  Value scene = mb.structure(1, list.size(), {"imname", "idlocate", "ishard"});
  for (size_t k = 0; k < list.size(); ++k) {
    const PersonInstance& p = plan.frames[list[k].frame].persons[list[k].person];
    mb.set(scene, "imname", k, shared.image(list[k].frame));
    mb.set(scene, "idlocate", k, shared.idlocate(p.box));
    mb.set(scene, "ishard", k, shared.hard(p));
  }
  return scene;
}

void write_train(const Plan& plan, const std::map<int, std::vector<Sighting>>& seen, const fs::path& dir) {
  std::vector<int> ids;
  for (const auto& [id, list] : seen)
    if (!plan.identities[id].test) ids.push_back(id);
  MatBuilder mb;
  Shared shared(mb, plan);
  Value train = mb.cell(ids.size(), 1);
  for (size_t k = 0; k < ids.size(); ++k) {
    const auto& list = seen.at(ids[k]);
    Value person = mb.structure(1, 1, {"idname", "nAppear", "scene"});
    mb.set(person, "idname", 0, mb.text(id_name(plan.identities[ids[k]].pid)));
    mb.set(person, "nAppear", 0, mb.scalar(double(list.size())));
    mb.set(person, "scene", 0, scene_struct(mb, shared, plan, list));
    mb.set_cell(train, k, person);
  }
  write_mat_file(dir / "Train.mat", {{"Train", train}});
}

/// One test query: the identity's most visible sighting, the other sightings (gallery
/// positives) and the pool images without the identity in a per-query random order.
struct TestQuery {
  int identity;
  Sighting query;
  std::vector<Sighting> positives;
  std::vector<size_t> distractors;  ///< frame indices
};

/// The query `query` of identity `id` with every other sighting as a gallery positive.
TestQuery make_query(int id, const std::vector<Sighting>& list, Sighting query,
                     const std::vector<size_t>& pool, uint64_t seed) {
  TestQuery q{id, query, {}, {}};
  for (const Sighting& s : list)
    if (s.frame != q.query.frame) q.positives.push_back(s);
  for (size_t fi : pool) {
    bool holds = fi == q.query.frame;
    for (const Sighting& s : q.positives) holds |= s.frame == fi;
    if (!holds) q.distractors.push_back(fi);
  }
  // Larger galleries extend smaller ones: TestG100 holds TestG50's images, and so on.
  Rng rng(mix_seed(seed, 5000 + static_cast<uint64_t>(id)));
  rng.shuffle(q.distractors);
  return q;
}

const PersonInstance& person(const Plan& plan, const Sighting& s) { return plan.frames[s.frame].persons[s.person]; }

/// Which sighting of an identity becomes the query; `nullopt`-like -1 skips the identity.
using QueryChooser = std::function<int(const std::vector<Sighting>&)>;

std::vector<TestQuery> make_queries(const Plan& plan, const std::map<int, std::vector<Sighting>>& seen,
                                    uint64_t seed, const QueryChooser& choose) {
  const std::vector<size_t> pool = by_number(plan, true);
  std::vector<TestQuery> out;
  for (const auto& [id, list] : seen) {
    if (!plan.identities[id].test) continue;
    const int k = choose(list);
    if (k >= 0) out.push_back(make_query(id, list, list[k], pool, seed));
  }
  return out;
}

/// The main protocol: each test identity's most visible sighting is its query.
int most_visible(const Plan& plan, const std::vector<Sighting>& list) {
  int best = 0;
  for (int k = 1; k < static_cast<int>(list.size()); ++k)
    if (person(plan, list[k]).visible > person(plan, list[best]).visible) best = k;
  return best;
}

/// Occlusion subset: identities seen at least once mostly hidden, queried by that sighting.
int most_occluded(const Plan& plan, const std::vector<Sighting>& list) {
  int best = -1;
  for (int k = 0; k < static_cast<int>(list.size()); ++k) {
    const double v = person(plan, list[k]).visible;
    if (v < kOccludedQuery && v >= kLeastVisibleQuery && (best < 0 || v < person(plan, list[best]).visible)) best = k;
  }
  return best;
}

int smallest(const Plan& plan, const std::vector<Sighting>& list) {
  int best = 0;
  for (int k = 1; k < static_cast<int>(list.size()); ++k)
    if (person(plan, list[k]).box.height < person(plan, list[best]).box.height) best = k;
  return best;
}

/// Low-resolution subset: the tenth of the test identities with the smallest sightings,
/// each queried by its smallest one (CUHK-SYSU's holds 290 of its 2,900 queries).
std::vector<TestQuery> low_resolution_queries(const Plan& plan, const std::map<int, std::vector<Sighting>>& seen,
                                              uint64_t seed) {
  std::vector<std::pair<double, int>> heights;  // smallest sighting height, identity
  for (const auto& [id, list] : seen)
    if (plan.identities[id].test) heights.emplace_back(person(plan, list[smallest(plan, list)]).box.height, id);
  std::sort(heights.begin(), heights.end());
  heights.resize(std::min(heights.size(), (heights.size() + 9) / 10));
  std::set<int> chosen;
  for (const auto& h : heights) chosen.insert(h.second);
  return make_queries(plan, seen, seed, [&](const std::vector<Sighting>& list) {
    return chosen.count(plan.frames[list[0].frame].persons[list[0].person].identity) ? smallest(plan, list) : -1;
  });
}

/// A TestG-shaped file: variable `name`, 1xQ struct of Query and Gallery (gallery_size
/// entries: positives first, then distractors with an empty idlocate).
void write_protocol(const Plan& plan, const std::vector<TestQuery>& queries, int gallery_size, const fs::path& path,
                    const std::string& name) {
  MatBuilder mb;
  Shared shared(mb, plan);
  Value test = mb.structure(1, queries.size(), {"Query", "Gallery"});
  for (size_t k = 0; k < queries.size(); ++k) {
    const TestQuery& q = queries[k];
    const PersonInstance& qp = plan.frames[q.query.frame].persons[q.query.person];
    Value query = mb.structure(1, 1, {"imname", "idlocate", "ishard", "idname"});
    mb.set(query, "imname", 0, shared.image(q.query.frame));
    mb.set(query, "idlocate", 0, shared.idlocate(qp.box));
    mb.set(query, "ishard", 0, shared.hard(qp));
    mb.set(query, "idname", 0, mb.text(id_name(plan.identities[q.identity].pid)));
    Value gallery = mb.structure(1, gallery_size, {"imname", "idlocate", "ishard"});
    const size_t n_pos = std::min(q.positives.size(), static_cast<size_t>(gallery_size));
    for (size_t g = 0; g < static_cast<size_t>(gallery_size); ++g) {
      if (g < n_pos) {
        const Sighting& s = q.positives[g];
        const PersonInstance& p = plan.frames[s.frame].persons[s.person];
        mb.set(gallery, "imname", g, shared.image(s.frame));
        mb.set(gallery, "idlocate", g, shared.idlocate(p.box));
        mb.set(gallery, "ishard", g, shared.hard(p));
      } else {
        mb.set(gallery, "imname", g, shared.image(q.distractors[g - n_pos]));
        mb.set(gallery, "idlocate", g, shared.empty());
        mb.set(gallery, "ishard", g, shared.zero());
      }
    }
    mb.set(test, "Query", k, query);
    mb.set(test, "Gallery", k, gallery);
  }
  write_mat_file(path, {{name, test}});
}

}  // namespace

void write_cuhk_annotations(const Plan& plan, const fs::path& root, uint64_t seed, SynthStats& stats) {
  const fs::path annotation = root / "annotation", protocol = annotation / "test" / "train_test";
  fs::create_directories(protocol);
  write_images_mat(plan, annotation);
  write_pool(plan, annotation);
  const auto seen = sightings(plan);
  write_train(plan, seen, protocol);
  const auto queries = make_queries(plan, seen, seed, [&](const auto& list) { return most_visible(plan, list); });
  stats.queries = static_cast<int64_t>(queries.size());
  const int64_t pool_size = stats.test_images;
  // A gallery of N distinct images other than the query image needs N <= pool - 1.
  for (int n : kGallerySizes)
    if (n <= pool_size - 1) {
      const std::string name = "TestG" + std::to_string(n);
      write_protocol(plan, queries, n, protocol / (name + ".mat"), name);
      stats.gallery_sizes.push_back(n);
    }
  if (stats.gallery_sizes.empty()) return;
  // The occlusion and low-resolution query subsets, with galleries of 100 (or 50 when
  // the pool is smaller), under the real files' variable names.
  const int subset_gallery = std::min(100, stats.gallery_sizes.back());
  const fs::path subset = annotation / "test" / "subset";
  fs::create_directories(subset);
  const auto occluded = make_queries(plan, seen, seed, [&](const auto& list) { return most_occluded(plan, list); });
  if (!occluded.empty()) write_protocol(plan, occluded, subset_gallery, subset / "Occlusion.mat", "Occlusion1");
  const auto small = low_resolution_queries(plan, seen, seed);
  if (!small.empty()) write_protocol(plan, small, subset_gallery, subset / "Resolution.mat", "Test_Size");
  stats.occlusion_queries = static_cast<int64_t>(occluded.size());
  stats.low_resolution_queries = static_cast<int64_t>(small.size());
}

}  // namespace psearch::data::synth
