#include "psearch/data/synth/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

namespace psearch::data::synth {
namespace {

int round_even(double v) { return std::max(2, static_cast<int>(std::lround(v / 2)) * 2); }

std::string prw_name(int camera, int sequence, int number) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "c%ds%d_%06d", camera + 1, sequence, number);
  return buf;
}

void check_config(const PlanConfig& c) {
  if (c.cameras < 2) throw std::invalid_argument("--cameras must be at least 2 (identities appear in two cameras)");
  if (c.identities < 2) throw std::invalid_argument("--identities must be at least 2 (one train, one test)");
  if (c.images < 4 * c.cameras)
    throw std::invalid_argument("--images " + std::to_string(c.images) + " is too small for " +
                                std::to_string(c.cameras) + " cameras (need at least " +
                                std::to_string(4 * c.cameras) + ")");
  if (c.image_size.width < 64 || c.image_size.height < 64)
    throw std::invalid_argument("image size must be at least 64x64");
}

void make_cameras(Plan& plan, const PlanConfig& c, Rng& rng) {
  for (int i = 0; i < c.cameras; ++i) {
    cv::Size size = c.image_size;
    if (c.format == Format::kCuhkSysu)  // CUHK-SYSU mixes street snaps and movie frames of many sizes
      size = {round_even(size.width * rng.uniform(0.8, 1.25)), round_even(size.height * rng.uniform(0.8, 1.25))};
    plan.cameras.push_back(random_camera(rng, size));
  }
}

void make_identities(Plan& plan, const PlanConfig& c, Rng& rng) {
  const int n = c.identities;
  const int n_test = std::clamp(static_cast<int>(std::lround(n * c.test_identities)), 1, n - 1);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  rng.shuffle(order);  // test identities scattered over the id range, as in PRW
  plan.identities.resize(n);
  for (int i = 0; i < n; ++i) {
    plan.identities[i].look = random_appearance(rng);
    plan.identities[i].pid = i + 1;
  }
  for (int k = 0; k < n_test; ++k) plan.identities[order[k]].test = true;
}

/// Frames per camera: uneven, as real cameras see different amounts of traffic.
std::vector<int> frames_per_camera(const PlanConfig& c, Rng& rng) {
  std::vector<double> weight(c.cameras);
  for (auto& w : weight) w = rng.uniform(0.75, 1.25);
  const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
  std::vector<int> count(c.cameras);
  int assigned = 0;
  for (int i = 0; i < c.cameras; ++i) assigned += count[i] = std::max(4, static_cast<int>(c.images * weight[i] / total));
  for (int i = 0; assigned < c.images; i = (i + 1) % c.cameras, ++assigned) ++count[i];
  for (int i = 0; assigned > c.images; i = (i + 1) % c.cameras)
    if (count[i] > 4) --count[i], --assigned;
  return count;
}

/// PRW names frames c<camera>s<sequence>_<frame number>, numbers rising within a sequence.
void make_prw_frames(Plan& plan, const PlanConfig& c, Rng& rng) {
  const std::vector<int> counts = frames_per_camera(c, rng);
  for (int cam = 0; cam < c.cameras; ++cam) {
    const int sequences = counts[cam] > 12 ? static_cast<int>(rng.integer(1, 3)) : 1;
    for (int s = 0, done = 0; s < sequences; ++s) {
      const int in_seq = (counts[cam] - done) / (sequences - s);
      int number = static_cast<int>(rng.integer(1, 400)) * 25;
      for (int k = 0; k < in_seq; ++k, ++done) {
        FramePlan f;
        f.camera = cam;
        f.name = prw_name(cam, s + 1, number);
        plan.frames.push_back(f);
        number += static_cast<int>(rng.integer(1, 6)) * 25;  // sampled every 1-6 s of 25 fps video
      }
    }
  }
}

/// CUHK-SYSU names images s<N>.jpg; numbers are shuffled so the test pool is not a block.
void make_cuhk_frames(Plan& plan, const PlanConfig& c, Rng& rng) {
  std::vector<int> numbers(c.images);
  std::iota(numbers.begin(), numbers.end(), 1);
  rng.shuffle(numbers);
  for (int i = 0; i < c.images; ++i) {
    FramePlan f;
    f.camera = i < c.cameras ? i : static_cast<int>(rng.integer(0, c.cameras - 1));  // every scene used
    f.name = "s" + std::to_string(numbers[i]);
    plan.frames.push_back(f);
  }
}

/// Test/train split stratified by camera, distractors per split, per-frame conditions.
void split_frames(Plan& plan, const PlanConfig& c, Rng& rng, uint64_t seed) {
  for (int cam = 0; cam < c.cameras; ++cam) {
    std::vector<int> idx;
    for (int i = 0; i < static_cast<int>(plan.frames.size()); ++i)
      if (plan.frames[i].camera == cam) idx.push_back(i);
    rng.shuffle(idx);
    const int n_test = static_cast<int>(std::lround(idx.size() * c.test_images));
    for (int k = 0; k < n_test; ++k) plan.frames[idx[k]].test = true;
  }
  for (int split = 0; split < 2; ++split) {
    std::vector<int> idx;
    for (int i = 0; i < static_cast<int>(plan.frames.size()); ++i)
      if (plan.frames[i].test == (split == 1)) idx.push_back(i);
    rng.shuffle(idx);
    const int n = std::max(idx.size() >= 8 ? 1 : 0, static_cast<int>(std::lround(idx.size() * c.distractor_images)));
    for (int k = 0; k < n; ++k) plan.frames[idx[k]].distractor = true;
  }
  for (size_t i = 0; i < plan.frames.size(); ++i) {
    FramePlan& f = plan.frames[i];
    f.size = plan.cameras[f.camera].size;
    f.brightness = rng.uniform(0.78, 1.18);
    f.noise = rng.uniform(1.5, 5.0);
    f.blur = rng.chance(0.3) ? rng.uniform(0.5, 1.1) : 0.0;
    f.seed = mix_seed(seed, 1000 + i);
  }
}

/// Frame lists per camera of one split, for the appearance scheduler.
struct SplitFrames {
  std::vector<std::vector<int>> by_camera;
  std::vector<int> labeled;  ///< labeled persons planned per frame (all frames)
};

bool holds(const FramePlan& f, int identity) {
  for (const auto& p : f.persons)
    if (p.identity == identity) return true;
  return false;
}

/// A frame of `cam` that lacks `identity` and has room; prefers lightly loaded frames
/// among a few random candidates, then scans. -1 when none.
int pick_frame(Plan& plan, SplitFrames& s, int cam, int identity, int cap, Rng& rng) {
  const auto& list = s.by_camera[cam];
  if (list.empty()) return -1;
  const auto ok = [&](int f) { return s.labeled[f] < cap && !holds(plan.frames[f], identity); };
  int best = -1;
  for (int t = 0; t < 6; ++t) {
    const int f = rng.pick(list);
    if (ok(f) && (best < 0 || s.labeled[f] < s.labeled[best])) best = f;
  }
  if (best >= 0) return best;
  const size_t start = static_cast<size_t>(rng.integer(0, static_cast<int64_t>(list.size()) - 1));
  for (size_t k = 0; k < list.size(); ++k)
    if (ok(list[(start + k) % list.size()])) return list[(start + k) % list.size()];
  return -1;
}

void place_identity(Plan& plan, SplitFrames& s, const PlanConfig& c, int identity, Rng& rng) {
  std::vector<int> cams;
  for (int cam = 0; cam < c.cameras; ++cam)
    if (!s.by_camera[cam].empty()) cams.push_back(cam);
  rng.shuffle(cams);
  const int n_app = static_cast<int>(rng.integer(c.min_appearances, c.max_appearances));
  const int most_cams = std::min<int>({n_app, static_cast<int>(cams.size()), 4});
  const int n_cams = static_cast<int>(rng.integer(std::min(2, most_cams), most_cams));
  std::vector<int> cams_used;
  const auto try_place = [&](int cam) {
    const int f = pick_frame(plan, s, cam, identity, c.max_labeled_per_image, rng);
    if (f < 0) return;
    PersonInstance p;
    p.identity = identity;
    plan.frames[f].persons.push_back(p);
    ++s.labeled[f];
    if (std::find(cams_used.begin(), cams_used.end(), cam) == cams_used.end()) cams_used.push_back(cam);
  };
  for (int k = 0; k < n_app && n_cams > 0; ++k) try_place(cams[k % n_cams]);
  // A full camera must not leave the identity in one camera only: the others stand in.
  for (size_t k = n_cams; k < cams.size() && cams_used.size() < 2; ++k) try_place(cams[k]);
  if (cams_used.size() < 2)
    throw std::invalid_argument("--identities " + std::to_string(c.identities) + " do not fit in --images " +
                                std::to_string(c.images) + ": identity " + std::to_string(identity + 1) +
                                " found room in fewer than two cameras; use more images or fewer identities");
}

void schedule_identities(Plan& plan, const PlanConfig& c, Rng& rng) {
  for (int split = 0; split < 2; ++split) {
    SplitFrames s;
    s.by_camera.resize(c.cameras);
    s.labeled.assign(plan.frames.size(), 0);
    for (int i = 0; i < static_cast<int>(plan.frames.size()); ++i) {
      const FramePlan& f = plan.frames[i];
      if (f.test == (split == 1) && !f.distractor) s.by_camera[f.camera].push_back(i);
    }
    std::vector<int> ids;
    for (int i = 0; i < static_cast<int>(plan.identities.size()); ++i)
      if (plan.identities[i].test == (split == 1)) ids.push_back(i);
    rng.shuffle(ids);
    for (int id : ids) place_identity(plan, s, c, id, rng);
  }
  for (auto& f : plan.frames) f.distractor = f.persons.empty();
}

View random_view(Rng& rng) {
  const double v = rng.uniform();
  return v < 0.3 ? View::kFront : v < 0.6 ? View::kBack : v < 0.8 ? View::kLeft : View::kRight;
}

const Appearance& look_of(const Plan& plan, const PersonInstance& p) {
  return p.identity >= 0 ? plan.identities[p.identity].look : p.passerby;
}

/// Sizes the body for its feet at `foot` and keeps it inside the frame.
cv::Rect2d body_at(const Plan& plan, const FramePlan& f, const PersonInstance& p, double foot, double centre_x) {
  const CameraStyle& cam = plan.cameras[f.camera];
  const Appearance& look = look_of(plan, p);
  const double H = f.size.height, W = f.size.width;
  double h = std::min(cam.person_height(foot) * look.height_scale, H - 1.0);
  h = std::max(h, cam.min_height * H * 0.9);
  const double w = std::min(h * aspect_ratio(look, p.pose.view), W - 1.0);
  foot = std::clamp(foot, h, H - 0.5);
  const double x = std::clamp(centre_x - w / 2, 0.0, W - w);
  return {x, foot - h, w, h};
}

double random_foot(const CameraStyle& cam, const FramePlan& f, Rng& rng) {
  const double near = f.size.height - 1.0, far = cam.foot_row(cam.min_height * f.size.height);
  // More people far away than close by: a flatter share of the ground near the horizon.
  return far + (near - far) * std::pow(rng.uniform(), 1.3);
}

double iou(const cv::Rect2d& a, const cv::Rect2d& b) {
  const double inter = (a & b).area();
  return inter / (a.area() + b.area() - inter + 1e-9);
}

PersonInstance passerby(Rng& rng) {
  PersonInstance p;
  p.passerby = random_appearance(rng);
  return p;
}

/// Places every person at random (avoiding near-duplicates), then, in crowded frames,
/// squeezes extra passers-by around one person so that people overlap.
void layout_frame(Plan& plan, FramePlan& f, const PlanConfig& c, Rng& rng) {
  const CameraStyle& cam = plan.cameras[f.camera];
  for (int k = static_cast<int>(rng.integer(0, c.max_passersby)); k > 0; --k) f.persons.push_back(passerby(rng));
  if (f.persons.empty()) f.persons.push_back(passerby(rng));
  std::vector<cv::Rect2d> placed;
  for (auto& p : f.persons) {
    p.pose = {random_view(rng), rng.uniform(-1, 1), std::clamp(cam.shade + rng.normal(0, 0.15), -1.0, 1.0)};
    for (int attempt = 0; attempt < 5; ++attempt) {
      p.body = body_at(plan, f, p, random_foot(cam, f, rng), rng.uniform(0, f.size.width));
      bool clash = false;
      for (const auto& q : placed) clash |= iou(p.body, q) > 0.3;
      if (!clash) break;
    }
    placed.push_back(p.body);
  }
  if (rng.chance(0.15)) {  // a crowd around one person
    const cv::Rect2d anchor = f.persons[static_cast<size_t>(rng.integer(0, f.persons.size() - 1))].body;
    for (int k = static_cast<int>(rng.integer(2, 4)); k > 0; --k) {
      PersonInstance p = passerby(rng);
      p.pose = {random_view(rng), rng.uniform(-1, 1), cam.shade};
      const double foot = anchor.br().y + rng.normal(0, 0.04 * f.size.height);
      // Keep the crowd's centre off the frame edge, where clamping would stack people.
      const double margin = std::min(1.5 * anchor.width, f.size.width / 2.0);
      const double centre = std::clamp(anchor.x + anchor.width / 2, margin, f.size.width - margin);
      const double cx = centre + rng.uniform(-1.3, 1.3) * anchor.width;
      p.body = body_at(plan, f, p, foot, cx);
      f.persons.push_back(p);
    }
  }
  for (int k = rng.chance(0.3) ? static_cast<int>(rng.integer(1, 2)) : 0; k > 0; --k)
    f.occluders.push_back(random_occluder(rng, cam, rng.uniform(0, f.size.width), random_foot(cam, f, rng), false));
}

/// Annotators do not draw pixel-tight boxes: jitter the body box a little, clip it to the
/// image, and round it as the format stores it (PRW: 4 decimals, CUHK-SYSU: integers).
cv::Rect2d annotate(const cv::Rect2d& body, cv::Size size, Format format, Rng& rng) {
  double x0 = body.x + rng.normal(0, 0.015 * body.width), y0 = body.y + rng.normal(0, 0.008 * body.height);
  double x1 = body.x + body.width + rng.normal(0, 0.015 * body.width);
  double y1 = body.y + body.height + rng.normal(0, 0.008 * body.height);
  const auto round = [&](double v) { return format == Format::kPrw ? std::round(v * 1e4) / 1e4 : std::round(v); };
  x0 = round(std::clamp(x0, 0.0, size.width - 2.0));
  y0 = round(std::clamp(y0, 0.0, size.height - 2.0));
  x1 = round(std::clamp(x1, x0 + 2.0, double(size.width)));
  y1 = round(std::clamp(y1, y0 + 2.0, double(size.height)));
  return {x0, y0, x1 - x0, y1 - y0};
}

}  // namespace

PlanConfig preset_config(Format format, SizePreset size) {
  PlanConfig c;
  c.format = format;
  const bool prw = format == Format::kPrw;
  switch (size) {
    case SizePreset::kTiny:
      c.images = prw ? 64 : 110, c.identities = prw ? 16 : 48, c.image_size = {160, 120};
      c.cameras = prw ? 6 : 8;
      break;
    case SizePreset::kSmall:
      c.images = prw ? 400 : 600, c.identities = prw ? 60 : 250, c.image_size = {320, 240};
      c.cameras = prw ? 6 : 16;
      break;
    case SizePreset::kMedium:
      c.images = prw ? 2000 : 3000, c.identities = prw ? 250 : 1300, c.image_size = {640, 360};
      c.cameras = prw ? 6 : 32;
      break;
    case SizePreset::kLarge:
      c.images = prw ? 6000 : 12000, c.identities = prw ? 900 : 5000, c.image_size = {960, 540};
      c.cameras = prw ? 6 : 64;
      break;
  }
  if (prw) {
    // PRW: frames of six video cameras; identities recur in many frames (tracks).
    c.test_images = 0.5, c.test_identities = 0.5;
    c.min_appearances = 5, c.max_appearances = 16;
    c.max_labeled_per_image = 6, c.max_passersby = 2;
  } else {
    // CUHK-SYSU: the test pool holds ~40 % of the images; identities appear 2-4 times,
    // surrounded by many unnamed people. Tiny keeps half the images in the pool so the
    // smallest gallery (50) fits.
    c.test_images = size == SizePreset::kTiny ? 0.5 : 0.4, c.test_identities = 0.45;
    c.min_appearances = 2, c.max_appearances = 4;
    c.max_labeled_per_image = 4, c.max_passersby = 4;
  }
  return c;
}

Plan make_plan(const PlanConfig& c, uint64_t seed) {
  check_config(c);
  Rng rng(mix_seed(seed, 0));
  Plan plan;
  plan.format = c.format;
  make_cameras(plan, c, rng);
  make_identities(plan, c, rng);
  if (c.format == Format::kPrw) make_prw_frames(plan, c, rng);
  else make_cuhk_frames(plan, c, rng);
  split_frames(plan, c, rng, seed);
  schedule_identities(plan, c, rng);
  for (auto& f : plan.frames) {
    layout_frame(plan, f, c, rng);
    for (auto& p : f.persons) p.box = annotate(p.body, f.size, c.format, rng);
  }
  return plan;
}

}  // namespace psearch::data::synth
