#include "psearch/data/synth/scene.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace psearch::data::synth {
namespace {

constexpr int kShift = 4;
constexpr double kOne = 1 << kShift;

cv::Point fixed(double x, double y) {
  return {static_cast<int>(std::lround(x * kOne)), static_cast<int>(std::lround(y * kOne))};
}

cv::Scalar scalar(cv::Vec3b c) { return {double(c[0]), double(c[1]), double(c[2])}; }

cv::Vec3b jitter(Rng& rng, cv::Vec3b c, int amount) {
  cv::Vec3b out;
  for (int k = 0; k < 3; ++k) out[k] = cv::saturate_cast<uchar>(c[k] + rng.integer(-amount, amount));
  return out;
}

cv::Vec3b scaled(cv::Vec3b c, double f) {
  return {cv::saturate_cast<uchar>(c[0] * f), cv::saturate_cast<uchar>(c[1] * f), cv::saturate_cast<uchar>(c[2] * f)};
}

/// Filled polygon on the image (anti-aliased) and, when `ids` is given, on the id map
/// (aliased: ids must not blend).
void fill(cv::Mat& image, cv::Mat* ids, const std::vector<cv::Point2d>& pts, cv::Vec3b colour, uint16_t id) {
  std::vector<cv::Point> p;
  for (const auto& q : pts) p.push_back(fixed(q.x, q.y));
  cv::fillConvexPoly(image, p, scalar(colour), cv::LINE_AA, kShift);
  if (ids) cv::fillConvexPoly(*ids, p, cv::Scalar(id), cv::LINE_8, kShift);
}

void fill_rect(cv::Mat& image, cv::Mat* ids, double x0, double y0, double x1, double y1, cv::Vec3b c, uint16_t id) {
  fill(image, ids, {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}}, c, id);
}

void fill_ellipse(cv::Mat& image, cv::Mat* ids, double cx, double cy, double rx, double ry, cv::Vec3b c, uint16_t id) {
  const cv::Size axes(std::max(1, int(std::lround(rx * kOne))), std::max(1, int(std::lround(ry * kOne))));
  cv::ellipse(image, fixed(cx, cy), axes, 0, 0, 360, scalar(c), cv::FILLED, cv::LINE_AA, kShift);
  if (ids) cv::ellipse(*ids, fixed(cx, cy), axes, 0, 0, 360, cv::Scalar(id), cv::FILLED, cv::LINE_8, kShift);
}

/// Approximately normal noise from three random bytes (sum of uniforms): cheap enough for
/// every pixel of every frame, and fully determined by `rng`.
void add_noise(cv::Mat& image, double sd, Rng& rng) {
  if (sd <= 0) return;
  const double scale = sd / 127.9;  // the sum of three uniform bytes has sd 127.9
  for (int y = 0; y < image.rows; ++y) {
    uchar* row = image.ptr<uchar>(y);
    const int n = image.cols * image.channels();
    for (int i = 0; i < n; i += 2) {
      const uint64_t r = rng.bits();
      const double a = double((r & 0xff) + ((r >> 8) & 0xff) + ((r >> 16) & 0xff)) - 382.5;
      const double b = double(((r >> 24) & 0xff) + ((r >> 32) & 0xff) + ((r >> 40) & 0xff)) - 382.5;
      row[i] = cv::saturate_cast<uchar>(row[i] + a * scale);
      if (i + 1 < n) row[i + 1] = cv::saturate_cast<uchar>(row[i + 1] + b * scale);
    }
  }
}

void draw_sky(cv::Mat& img, const CameraStyle& cam, int horizon) {
  for (int y = 0; y < horizon; ++y) {
    const double t = horizon > 1 ? double(y) / (horizon - 1) : 0.0;
    cv::Vec3b c;
    for (int k = 0; k < 3; ++k) c[k] = cv::saturate_cast<uchar>(cam.sky_top[k] * (1 - t) + cam.sky_bottom[k] * t);
    img.row(y).setTo(scalar(c));
  }
}

void draw_windows(cv::Mat& img, Rng& rng, double x0, double x1, double top, double bottom, cv::Vec3b facade) {
  const double w = x1 - x0, h = bottom - top;
  const int cols = static_cast<int>(rng.integer(2, 6)), rows = std::max(1, static_cast<int>(h / (w / cols) / 1.2));
  const cv::Vec3b glass = rng.chance(0.5) ? cv::Vec3b(120, 90, 60) : scaled(facade, 0.55);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double cx0 = x0 + w * (c + 0.25) / cols, cx1 = x0 + w * (c + 0.75) / cols;
      const double cy0 = top + h * (r + 0.2) / rows, cy1 = top + h * (r + 0.65) / rows;
      fill_rect(img, nullptr, cx0, cy0, cx1, cy1, rng.chance(0.15) ? cv::Vec3b(150, 210, 230) : glass, 0);
    }
}

void draw_skyline(cv::Mat& img, const CameraStyle& cam, Rng& rng, int horizon) {
  draw_sky(img, cam, horizon);
  const std::vector<cv::Vec3b> facades = {{170, 190, 205}, {150, 150, 150}, {60, 80, 150}, {200, 200, 195},
                                          {120, 130, 140}, {90, 110, 120}};
  const double W = img.cols;
  for (double x = -rng.uniform(0, 0.1) * W; x < W;) {
    const double bw = rng.uniform(0.08, 0.28) * W, bh = rng.uniform(0.35, 1.0) * horizon;
    const cv::Vec3b facade = jitter(rng, rng.pick(facades), 12);
    fill_rect(img, nullptr, x, horizon - bh, x + bw, horizon, facade, 0);
    if (bw > 12 && bh > 12) draw_windows(img, rng, x + 2, x + bw - 2, horizon - bh + 3, horizon - 2, facade);
    x += bw + rng.uniform(0, 0.06) * W;
  }
}

/// A brick wall with a shop front or two: the indoor / near-facade cameras.
void draw_wall(cv::Mat& img, const CameraStyle& cam, Rng& rng, int horizon) {
  img.rowRange(0, horizon).setTo(scalar(cam.upper_colour));
  const int brick_h = std::max(3, img.rows / 36), brick_w = brick_h * 5 / 2;
  const cv::Vec3b mortar = scaled(cam.upper_colour, 1.18);
  for (int y = 0, row = 0; y < horizon; y += brick_h, ++row) {
    cv::line(img, {0, y}, {img.cols - 1, y}, scalar(mortar), 1);
    for (int x = (row % 2) * brick_w / 2; x < img.cols; x += brick_w)
      cv::line(img, {x, y}, {x, std::min(horizon - 1, y + brick_h)}, scalar(mortar), 1);
  }
  const int shops = static_cast<int>(rng.integer(0, 2));
  for (int s = 0; s < shops; ++s) {
    const double x0 = rng.uniform(0, 0.7) * img.cols, w = rng.uniform(0.12, 0.3) * img.cols;
    const double top = horizon * rng.uniform(0.25, 0.55);
    fill_rect(img, nullptr, x0, top, x0 + w, horizon, {70, 60, 50}, 0);
    fill_rect(img, nullptr, x0 + 3, top + 3, x0 + w - 3, horizon, jitter(rng, {140, 120, 100}, 20), 0);
  }
}

void draw_ground(cv::Mat& img, const CameraStyle& cam, Rng& rng, int horizon) {
  const double W = img.cols, H = img.rows;
  cv::Mat ground = img.rowRange(horizon, img.rows);
  ground.setTo(scalar(cam.ground_colour));
  const double vx = W * rng.uniform(0.3, 0.7);
  const cv::Vec3b line_colour = scaled(cam.ground_colour, cam.ground == GroundKind::kAsphalt ? 1.6 : 0.8);
  if (cam.ground == GroundKind::kTiles) {
    for (int k = 1; k <= 12; ++k) {  // rows of tiles get taller toward the camera
      const double y = horizon + (H - horizon) * (k / 12.0) * (k / 12.0);
      cv::line(img, fixed(0, y), fixed(W, y), scalar(line_colour), 1, cv::LINE_AA, kShift);
    }
    for (double xb = -W; xb <= 2 * W; xb += W / 7)
      cv::line(img, fixed(vx + (xb - vx) * 0.05, horizon), fixed(xb, H), scalar(line_colour), 1, cv::LINE_AA, kShift);
  } else if (cam.ground == GroundKind::kAsphalt) {
    fill_rect(img, nullptr, 0, horizon, W, horizon + (H - horizon) * 0.12, scaled(cam.ground_colour, 1.35), 0);
    for (int lane = -1; lane <= 1; lane += 2)
      for (int k = 0; k < 10; k += 2) {  // dashed lane markings converging on the vanishing point
        const double t0 = 0.12 + 0.088 * k, t1 = t0 + 0.088;
        const double xb = vx + lane * W * 0.35;
        const auto at = [&](double t) { return cv::Point2d(vx + (xb - vx) * t, horizon + (H - horizon) * t); };
        cv::line(img, fixed(at(t0).x, at(t0).y), fixed(at(t1).x, at(t1).y), scalar(line_colour),
                 std::max(1, int(H / 120)), cv::LINE_AA, kShift);
      }
  } else {
    const double half = W * rng.uniform(0.12, 0.25);  // a sandy path through the grass
    fill(img, nullptr, {{vx - 2, double(horizon)}, {vx + 2, double(horizon)}, {vx + half, H}, {vx - half, H}},
         {130, 175, 200}, 0);
  }
}

/// Trees and lamp posts near the horizon: behind every person the frame can hold.
void draw_far_objects(cv::Mat& img, const CameraStyle& cam, Rng& rng, int horizon) {
  const int n = static_cast<int>(rng.integer(0, 4));
  const double far_row = cam.foot_row(cam.min_height * img.rows);
  for (int i = 0; i < n; ++i) {
    const double foot = rng.uniform(horizon + 1, std::max(horizon + 2.0, far_row));
    const double hp = cam.person_height(foot), x = rng.uniform(0, img.cols);
    if (rng.chance(0.6)) {
      const double th = 2.4 * hp;
      fill_rect(img, nullptr, x - 0.06 * hp, foot - th * 0.55, x + 0.06 * hp, foot, {40, 60, 90}, 0);
      const cv::Vec3b leaves = jitter(rng, {50, 120, 60}, 20);
      fill_ellipse(img, nullptr, x, foot - th * 0.7, 0.45 * hp, 0.4 * th, leaves, 0);
      fill_ellipse(img, nullptr, x - 0.25 * hp, foot - th * 0.6, 0.3 * hp, 0.25 * th, scaled(leaves, 0.85), 0);
    } else {
      fill_rect(img, nullptr, x - 0.03 * hp, foot - 1.8 * hp, x + 0.03 * hp, foot, {60, 60, 60}, 0);
      fill_ellipse(img, nullptr, x, foot - 1.8 * hp, 0.1 * hp, 0.05 * hp, {200, 230, 240}, 0);
    }
  }
}

/// Large faint blotches (stains, shadows, worn patches) so that the ground is not flat.
void draw_blotches(cv::Mat& img, Rng& rng, int horizon) {
  cv::Mat overlay = img.clone();
  const int n = static_cast<int>(rng.integer(3, 8));
  for (int i = 0; i < n; ++i) {
    const double cx = rng.uniform(0, img.cols), cy = rng.uniform(horizon, img.rows);
    const double rx = rng.uniform(0.05, 0.25) * img.cols, ry = rx * rng.uniform(0.2, 0.5);
    const double f = rng.uniform(0.75, 1.2);
    const cv::Vec3b c = img.at<cv::Vec3b>(std::min(img.rows - 1, int(cy)), std::min(img.cols - 1, int(cx)));
    fill_ellipse(overlay, nullptr, cx, cy, rx, ry, scaled(c, f), 0);
  }
  cv::addWeighted(img, 0.6, overlay, 0.4, 0.0, img);
}

}  // namespace

double CameraStyle::person_height(double foot_y) const {
  const double H = size.height, hz = horizon * H;
  return std::max(0.0, bottom_height * H * (foot_y - hz) / (H - hz));
}

double CameraStyle::foot_row(double height) const {
  const double H = size.height, hz = horizon * H;
  return hz + height * (H - hz) / (bottom_height * H);
}

CameraStyle random_camera(Rng& rng, cv::Size size) {
  CameraStyle cam;
  cam.size = size;
  cam.texture_seed = rng.bits();
  cam.horizon = rng.uniform(0.18, 0.4);
  cam.bottom_height = rng.uniform(0.6, 0.8);
  cam.min_height = std::max(0.14, 22.0 / size.height);
  for (int k = 0; k < 3; ++k) cam.cast[k] = rng.uniform(0.86, 1.14);
  cam.shade = rng.uniform(-1, 1);
  cam.upper = rng.chance(0.6) ? UpperKind::kSkyline : UpperKind::kWall;
  const double g = rng.uniform();
  cam.ground = g < 0.4 ? GroundKind::kTiles : g < 0.75 ? GroundKind::kAsphalt : GroundKind::kGrass;
  const std::vector<cv::Vec3b> tiles = {{150, 165, 175}, {120, 140, 170}, {170, 170, 170}, {100, 120, 150}};
  cam.ground_colour = cam.ground == GroundKind::kTiles     ? jitter(rng, rng.pick(tiles), 15)
                      : cam.ground == GroundKind::kAsphalt ? jitter(rng, {85, 85, 85}, 15)
                                                           : jitter(rng, {60, 140, 80}, 20);
  const std::vector<cv::Vec3b> walls = {{60, 70, 150}, {160, 190, 210}, {140, 140, 140}, {210, 215, 220}};
  cam.upper_colour = jitter(rng, rng.pick(walls), 15);
  const bool overcast = rng.chance(0.35);
  cam.sky_top = overcast ? jitter(rng, {175, 170, 165}, 10) : jitter(rng, {200, 140, 80}, 15);
  cam.sky_bottom = overcast ? jitter(rng, {215, 212, 210}, 10) : jitter(rng, {235, 210, 180}, 10);
  const int fixed_count = static_cast<int>(rng.integer(1, 3));
  const double near_row = size.height - 1, far_row = cam.foot_row(cam.min_height * size.height);
  for (int i = 0; i < fixed_count; ++i)
    cam.fixed_occluders.push_back(
        random_occluder(rng, cam, rng.uniform(0, size.width), rng.uniform(far_row, near_row), true));
  return cam;
}

Occluder random_occluder(Rng& rng, const CameraStyle& cam, double x, double foot_y, bool fixed) {
  Occluder o;
  o.x = x;
  o.foot_y = foot_y;
  // Fixed occluders are street furniture; cars only pass by, and on the far half of the
  // ground (the road), so they hide people behind them without filling the frame.
  const double k = fixed ? rng.uniform(0.0, 0.85) : rng.uniform();
  if (k < 0.3) {
    o.kind = OccluderKind::kPole;
  } else if (k < 0.45) {
    o.kind = OccluderKind::kBench;
  } else if (k < 0.7) {
    o.kind = OccluderKind::kBush;
  } else if (k < 0.85) {
    o.kind = OccluderKind::kBin;
  } else {
    o.kind = OccluderKind::kCar;
    const double far = cam.foot_row(cam.min_height * cam.size.height);
    o.foot_y = far + (foot_y - far) * 0.5;
  }
  const double hp = cam.person_height(o.foot_y);
  switch (o.kind) {
    case OccluderKind::kPole:
      o.width = 0.08 * hp, o.height = rng.uniform(1.3, 2.2) * hp;
      o.colour = rng.chance(0.5) ? cv::Vec3b(70, 70, 70) : cv::Vec3b(50, 90, 40);
      break;
    case OccluderKind::kBench:
      o.width = 1.1 * hp, o.height = 0.5 * hp, o.colour = jitter(rng, {50, 90, 130}, 20);
      break;
    case OccluderKind::kBush:
      o.width = rng.uniform(0.5, 1.0) * hp, o.height = rng.uniform(0.3, 0.55) * hp;
      o.colour = jitter(rng, {50, 120, 50}, 20);
      break;
    case OccluderKind::kBin:
      o.width = 0.3 * hp, o.height = 0.55 * hp, o.colour = jitter(rng, {60, 80, 60}, 20);
      break;
    case OccluderKind::kCar:
      o.width = 2.2 * hp, o.height = 0.78 * hp;
      o.colour = jitter(rng, rng.pick(std::vector<cv::Vec3b>{{40, 40, 180}, {200, 200, 200}, {30, 30, 30},
                                                           {150, 90, 40}, {160, 160, 150}}), 20);
      break;
  }
  return o;
}

cv::Mat render_background(const CameraStyle& cam) {
  Rng rng(cam.texture_seed);
  cv::Mat img(cam.size, CV_8UC3, cv::Scalar(0, 0, 0));
  const int horizon = std::clamp(static_cast<int>(std::lround(cam.horizon * cam.size.height)), 1, cam.size.height - 1);
  if (cam.upper == UpperKind::kSkyline) draw_skyline(img, cam, rng, horizon);
  else draw_wall(img, cam, rng, horizon);
  draw_ground(img, cam, rng, horizon);
  draw_blotches(img, rng, horizon);
  draw_far_objects(img, cam, rng, horizon);
  add_noise(img, 3.0, rng);  // fixed texture grain
  cv::GaussianBlur(img, img, {3, 3}, 0.6);
  return img;
}

void draw_occluder(const Occluder& o, cv::Mat& image, cv::Mat& ids, uint16_t id) {
  const double x0 = o.x - o.width / 2, x1 = o.x + o.width / 2, top = o.foot_y - o.height, y = o.foot_y;
  const double w = o.width, h = o.height;
  switch (o.kind) {
    case OccluderKind::kPole:
      fill_rect(image, &ids, x0, top, x1, y, o.colour, id);
      fill_rect(image, &ids, x0 - w, top, x1 + w, top + 0.05 * h, scaled(o.colour, 0.8), id);
      break;
    case OccluderKind::kCar:
      fill_rect(image, &ids, x0, y - 0.62 * h, x1, y - 0.15 * h, o.colour, id);
      fill(image, &ids, {{x0 + 0.2 * w, y - 0.62 * h}, {x0 + 0.3 * w, top}, {x1 - 0.3 * w, top}, {x1 - 0.15 * w, y - 0.62 * h}},
           o.colour, id);
      fill(image, nullptr, {{x0 + 0.25 * w, y - 0.64 * h}, {x0 + 0.33 * w, top + 0.08 * h}, {x1 - 0.33 * w, top + 0.08 * h},
                            {x1 - 0.2 * w, y - 0.64 * h}}, {90, 70, 50}, 0);
      fill_ellipse(image, &ids, x0 + 0.2 * w, y - 0.15 * h, 0.15 * h, 0.15 * h, {20, 20, 20}, id);
      fill_ellipse(image, &ids, x1 - 0.2 * w, y - 0.15 * h, 0.15 * h, 0.15 * h, {20, 20, 20}, id);
      break;
    case OccluderKind::kBench:
      // A backrest of two slats with a gap, a seat and legs: people behind show through.
      fill_rect(image, &ids, x0, top, x1, top + 0.15 * h, o.colour, id);
      fill_rect(image, &ids, x0, top + 0.3 * h, x1, top + 0.45 * h, o.colour, id);
      fill_rect(image, &ids, x0, y - 0.5 * h, x1, y - 0.4 * h, scaled(o.colour, 0.8), id);
      fill_rect(image, &ids, x0 + 0.05 * w, top, x0 + 0.1 * w, y, {40, 40, 40}, id);
      fill_rect(image, &ids, x1 - 0.1 * w, top, x1 - 0.05 * w, y, {40, 40, 40}, id);
      break;
    case OccluderKind::kBush:
      fill_ellipse(image, &ids, o.x, y - 0.45 * h, 0.5 * w, 0.5 * h, o.colour, id);
      fill_ellipse(image, &ids, x0 + 0.3 * w, y - 0.6 * h, 0.3 * w, 0.4 * h, scaled(o.colour, 1.15), id);
      fill_ellipse(image, &ids, x1 - 0.3 * w, y - 0.55 * h, 0.3 * w, 0.4 * h, scaled(o.colour, 0.85), id);
      break;
    case OccluderKind::kBin:
      fill_rect(image, &ids, x0, top + 0.1 * h, x1, y, o.colour, id);
      fill_ellipse(image, &ids, o.x, top + 0.1 * h, 0.55 * w, 0.1 * h, scaled(o.colour, 0.7), id);
      break;
  }
}

void apply_camera_response(cv::Mat& image, const cv::Vec3d& cast, double brightness, double noise, Rng& rng) {
  cv::Mat lut(1, 256, CV_8UC3);
  for (int v = 0; v < 256; ++v)
    for (int k = 0; k < 3; ++k) lut.at<cv::Vec3b>(0, v)[k] = cv::saturate_cast<uchar>(v * cast[k] * brightness);
  cv::LUT(image, lut, image);
  add_noise(image, noise, rng);
}

}  // namespace psearch::data::synth
