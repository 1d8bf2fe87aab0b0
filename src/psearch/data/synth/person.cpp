#include "psearch/data/synth/person.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

namespace psearch::data::synth {
namespace {

// Palettes in BGR. Clothing colours are few and saturated enough that two identities can
// share a colour (as real people do) while the combination of colours, pattern and
// accessories stays distinctive.
const std::vector<cv::Vec3b> kClothing = {
    {40, 40, 200},   {30, 30, 130},   {30, 120, 240},  {40, 210, 230},  {50, 150, 50},   {40, 80, 30},
    {140, 140, 30},  {230, 170, 90},  {110, 40, 30},   {200, 80, 40},   {150, 50, 120},  {170, 130, 230},
    {235, 235, 235}, {180, 180, 180}, {110, 110, 110}, {30, 30, 30},    {40, 70, 110},   {150, 190, 210},
    {90, 150, 160},  {140, 90, 60}};
const std::vector<cv::Vec3b> kLowerClothing = {{140, 90, 60},   {30, 30, 30},  {110, 110, 110}, {110, 40, 30},
                                               {90, 150, 160},  {150, 190, 210}, {40, 70, 110},  {170, 120, 80},
                                               {60, 60, 60},    {235, 235, 235}};
const std::vector<cv::Vec3b> kSkin = {{190, 220, 255}, {160, 200, 240}, {130, 170, 220},
                                      {100, 140, 190}, {70, 100, 150},  {50, 70, 100}};
const std::vector<cv::Vec3b> kHair = {{25, 25, 25},    {25, 40, 60},    {40, 75, 110},
                                      {120, 190, 220}, {160, 160, 160}, {30, 60, 150}};
const std::vector<cv::Vec3b> kShoes = {{20, 20, 20}, {230, 230, 230}, {30, 60, 100}, {100, 100, 100}};

/// A palette colour moved by up to +-amount per channel, so identities that draw the same
/// palette entry still differ slightly.
cv::Vec3b jitter(Rng& rng, cv::Vec3b c, int amount) {
  cv::Vec3b out;
  for (int k = 0; k < 3; ++k) out[k] = cv::saturate_cast<uchar>(c[k] + rng.integer(-amount, amount));
  return out;
}

/// A clothing colour different from `avoid` (a second colour identical to the first
/// would make a pattern invisible).
cv::Vec3b other_colour(Rng& rng, cv::Vec3b avoid) {
  for (;;) {
    const cv::Vec3b c = jitter(rng, rng.pick(kClothing), 10);
    if (cv::norm(cv::Vec3d(c) - cv::Vec3d(avoid)) > 90) return c;
  }
}

cv::Scalar scalar(cv::Vec3b c) { return {double(c[0]), double(c[1]), double(c[2])}; }

cv::Vec3b darker(cv::Vec3b c, double f) {
  return {cv::saturate_cast<uchar>(c[0] * f), cv::saturate_cast<uchar>(c[1] * f), cv::saturate_cast<uchar>(c[2] * f)};
}

constexpr int kShift = 4;  // sub-pixel bits for OpenCV drawing
constexpr double kOne = 1 << kShift;

/// Draws in box-relative coordinates (u across, v down, both 0..1) on the colour patch and,
/// for the silhouette, on the alpha mask. `mirror` flips u so one drawing serves both
/// side views.
class Painter {
 public:
  Painter(cv::Mat& image, cv::Mat& alpha, cv::Point2d origin, cv::Size2d size, bool mirror)
      : image_(image), alpha_(alpha), origin_(origin), size_(size), mirror_(mirror) {}

  double width() const { return size_.width; }
  double height() const { return size_.height; }

  cv::Point px(double u, double v) const {
    const double x = origin_.x + (mirror_ ? 1.0 - u : u) * size_.width;
    const double y = origin_.y + v * size_.height;
    return {static_cast<int>(std::lround(x * kOne)), static_cast<int>(std::lround(y * kOne))};
  }

  void poly(std::initializer_list<std::pair<double, double>> uv, cv::Vec3b colour, bool silhouette = true) {
    std::vector<cv::Point> pts;
    for (const auto& [u, v] : uv) pts.push_back(px(u, v));
    poly_px(pts, colour, silhouette);
  }

  void poly_px(const std::vector<cv::Point>& pts, cv::Vec3b colour, bool silhouette = true) {
    cv::fillConvexPoly(image_, pts, scalar(colour), cv::LINE_AA, kShift);
    if (silhouette) cv::fillConvexPoly(alpha_, pts, cv::Scalar(255), cv::LINE_AA, kShift);
  }

  void rect(double u0, double v0, double u1, double v1, cv::Vec3b colour, bool silhouette = true) {
    poly({{u0, v0}, {u1, v0}, {u1, v1}, {u0, v1}}, colour, silhouette);
  }

  /// Ellipse centred at (u, v) with radii in pixels.
  void ellipse(double u, double v, double rx, double ry, cv::Vec3b colour, bool silhouette = true) {
    const cv::Point c = px(u, v);
    const cv::Size axes(std::max(1, static_cast<int>(std::lround(rx * kOne))),
                        std::max(1, static_cast<int>(std::lround(ry * kOne))));
    cv::ellipse(image_, c, axes, 0, 0, 360, scalar(colour), cv::FILLED, cv::LINE_AA, kShift);
    if (silhouette) cv::ellipse(alpha_, c, axes, 0, 0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_AA, kShift);
  }

  /// A limb: a quadrilateral of `thickness` (pixels) from a to b (box coordinates).
  void limb(cv::Point2d a, cv::Point2d b, double thickness, cv::Vec3b colour) {
    const double dx = (b.x - a.x) * size_.width, dy = (b.y - a.y) * size_.height;
    const double len = std::max(1e-6, std::hypot(dx, dy));
    const double nu = -dy / len * thickness / 2 / size_.width, nv = dx / len * thickness / 2 / size_.height;
    poly({{a.x + nu, a.y + nv}, {b.x + nu, b.y + nv}, {b.x - nu, b.y - nv}, {a.x - nu, a.y - nv}}, colour);
  }

  void line(double u0, double v0, double u1, double v1, double thickness, cv::Vec3b colour) {
    cv::line(image_, px(u0, v0), px(u1, v1), scalar(colour), std::max(1, static_cast<int>(std::lround(thickness))),
             cv::LINE_AA, kShift);
  }

  cv::Mat& image() { return image_; }

 private:
  cv::Mat& image_;
  cv::Mat& alpha_;
  cv::Point2d origin_;
  cv::Size2d size_;
  bool mirror_;
};

/// Vertical landmarks of the body in box coordinates, shared by all views.
struct Body {
  double head_r;    ///< head radius, pixels (vertical)
  double shoulder;  ///< v of the shoulders
  double waist;     ///< v of the waist
  double foot = 0.95;
};

Body body_of(const Appearance& a, double height) {
  Body b;
  b.head_r = 0.066 * a.head_scale * height;
  b.shoulder = 2 * b.head_r / height + 0.025;
  b.waist = 1.0 - a.leg_ratio;
  return b;
}

/// The torso's pattern, drawn only inside `torso` (pixel polygon) of the patch.
void draw_pattern(Painter& p, const Appearance& a, const Body& b, const std::vector<cv::Point>& torso, double u0,
                  double u1) {
  if (a.pattern == Pattern::kSolid) return;
  cv::Mat& image = p.image();
  cv::Mat torso_mask = cv::Mat::zeros(image.size(), CV_8UC1);
  cv::fillConvexPoly(torso_mask, torso, cv::Scalar(255), cv::LINE_8, kShift);
  cv::Mat marks = cv::Mat::zeros(image.size(), CV_8UC1);
  const double v0 = b.shoulder, v1 = b.waist + 0.03;
  const int n = a.stripes;
  const auto mark = [&](double ua, double va, double ub, double vb) {
    cv::rectangle(marks, p.px(ua, va), p.px(ub, vb), cv::Scalar(255), cv::FILLED, cv::LINE_8, kShift);
  };
  switch (a.pattern) {
    case Pattern::kHorizontalStripes:
      for (int i = 1; i < 2 * n; i += 2) mark(u0, v0 + (v1 - v0) * i / (2 * n), u1, v0 + (v1 - v0) * (i + 1) / (2 * n));
      break;
    case Pattern::kVerticalStripes:
      for (int i = 1; i < 2 * n; i += 2) mark(u0 + (u1 - u0) * i / (2 * n), v0, u0 + (u1 - u0) * (i + 1) / (2 * n), v1);
      break;
    case Pattern::kChecks:
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
          if ((i + j) % 2) mark(u0 + (u1 - u0) * i / n, v0 + (v1 - v0) * j / n, u0 + (u1 - u0) * (i + 1) / n,
                                v0 + (v1 - v0) * (j + 1) / n);
      break;
    case Pattern::kTwoTone: mark(u0, v0 + (v1 - v0) * 0.45, u1, v1); break;
    case Pattern::kSolid: break;
  }
  cv::bitwise_and(marks, torso_mask, marks);
  image.setTo(scalar(a.upper_second), marks);
}

void draw_logo(Painter& p, const Appearance& a, const Body& b) {
  const double cu = 0.5, cv_ = b.shoulder + 0.3 * (b.waist - b.shoulder);
  const double r = 0.1;  // in u units; v radius converted so the logo stays round
  const double rv = r * p.width() / p.height();
  if (a.logo_shape == 0) p.ellipse(cu, cv_, r * p.width(), r * p.width(), a.logo, false);
  else if (a.logo_shape == 1) p.poly({{cu, cv_ - rv}, {cu + r, cv_ + rv}, {cu - r, cv_ + rv}}, a.logo, false);
  else p.rect(cu - r, cv_ - rv, cu + r, cv_ + rv, a.logo, false);
}

/// Legs and lower garment seen from the front or back: two legs side by side, one lifted
/// a little with the walking phase.
void draw_legs_frontal(Painter& p, const Appearance& a, const Body& b, double stride) {
  const double knee = b.waist + 0.42 * (b.foot - b.waist);
  const double lift_l = std::max(0.0, stride) * 0.03, lift_r = std::max(0.0, -stride) * 0.03;
  const bool bare = a.lower_kind != LowerKind::kTrousers;
  const cv::Vec3b leg = bare ? a.skin : a.lower;
  p.poly({{0.23, b.waist}, {0.49, b.waist}, {0.46, b.foot - lift_l}, {0.27, b.foot - lift_l}}, leg);
  p.poly({{0.51, b.waist}, {0.77, b.waist}, {0.73, b.foot - lift_r}, {0.54, b.foot - lift_r}}, leg);
  const double shoe_r = 0.035 * p.height();
  p.ellipse(0.365, b.foot + 0.012 - lift_l, 0.14 * p.width(), shoe_r, a.shoes);
  p.ellipse(0.635, b.foot + 0.012 - lift_r, 0.14 * p.width(), shoe_r, a.shoes);
  if (a.lower_kind == LowerKind::kShorts) {
    p.poly({{0.22, b.waist}, {0.78, b.waist}, {0.76, knee}, {0.24, knee}}, a.lower);
  } else if (a.lower_kind == LowerKind::kSkirt) {
    p.poly({{0.22, b.waist}, {0.78, b.waist}, {0.88, knee + 0.04}, {0.12, knee + 0.04}}, a.lower);
  } else {
    p.rect(0.23, b.waist, 0.77, b.waist + 0.08, a.lower);
  }
}

/// Legs seen from the side: two limbs swinging about the hip; the far one drawn darker.
void draw_legs_side(Painter& p, const Appearance& a, const Body& b, double stride) {
  const double len_v = b.foot - b.waist;
  const double angle = 0.3 * stride;
  const double thick = 0.11 * p.height() * 0.9;
  const bool bare = a.lower_kind != LowerKind::kTrousers;
  const auto foot_of = [&](double ang) {
    // Horizontal offset in u units (the box is narrower than tall).
    return cv::Point2d(0.5 + std::sin(ang) * len_v * p.height() / p.width(), b.waist + std::cos(ang) * len_v);
  };
  const cv::Point2d hip(0.5, b.waist);
  for (int leg = 0; leg < 2; ++leg) {
    const double ang = leg == 0 ? -angle : angle;  // far leg first
    const double f = leg == 0 ? 0.8 : 1.0;
    const cv::Point2d foot = foot_of(ang);
    p.limb(hip, foot, thick, darker(bare ? a.skin : a.lower, f));
    p.ellipse(foot.x + 0.06, foot.y, 0.075 * p.height(), 0.03 * p.height(), darker(a.shoes, f));
    if (a.lower_kind == LowerKind::kShorts) {
      const cv::Point2d knee = hip + (foot - hip) * 0.42;
      p.limb(hip, knee, thick * 1.15, darker(a.lower, f));
    }
  }
  if (a.lower_kind == LowerKind::kSkirt) {
    const double knee = b.waist + 0.45 * len_v;
    p.poly({{0.3, b.waist}, {0.7, b.waist}, {0.82, knee}, {0.18, knee}}, a.lower);
  } else {
    p.ellipse(0.5, b.waist + 0.02, 0.2 * p.width(), 0.04 * p.height(), a.lower);
  }
}

/// An arm hanging from the shoulder; sleeves cover it fully or the upper third.
void draw_arm(Painter& p, const Appearance& a, cv::Point2d shoulder, cv::Point2d hand, double thick, double f) {
  const cv::Vec3b sleeve = darker(a.upper, f), skin = darker(a.skin, f);
  if (a.long_sleeves) {
    p.limb(shoulder, hand, thick, sleeve);
  } else {
    const cv::Point2d elbow = shoulder + (hand - shoulder) * 0.38;
    p.limb(shoulder, hand, thick * 0.85, skin);
    p.limb(shoulder, elbow, thick, sleeve);
  }
  p.ellipse(hand.x, hand.y, thick * 0.5, thick * 0.55, skin);
}

void draw_headwear(Painter& p, const Appearance& a, double cu, double head_v, double rx, double ry, int facing) {
  if (a.headwear == Headwear::kNone) return;
  const double top = head_v - ry / p.height();
  if (a.headwear == Headwear::kBeanie) {
    p.ellipse(cu, head_v - 0.35 * ry / p.height(), rx * 1.05, ry * 0.7, a.headwear_colour);
    return;
  }
  p.ellipse(cu, head_v - 0.45 * ry / p.height(), rx * 1.02, ry * 0.6, a.headwear_colour);
  // The brim points where the person looks: toward the camera (a flat band) or sideways.
  if (facing == 0) p.rect(cu - rx / p.width(), top + 0.55 * ry / p.height(), cu + rx / p.width(),
                           top + 0.75 * ry / p.height(), darker(a.headwear_colour, 0.8));
  else if (facing > 0) p.poly({{cu, top + 0.45 * ry / p.height()}, {cu + 1.9 * rx / p.width(), top + 0.6 * ry / p.height()},
                               {cu + 1.9 * rx / p.width(), top + 0.72 * ry / p.height()}, {cu, top + 0.72 * ry / p.height()}},
                              darker(a.headwear_colour, 0.8));
}

void draw_frontal(Painter& p, const Appearance& a, const Pose& pose) {
  const bool back = pose.view == View::kBack;
  const Body b = body_of(a, p.height());
  const double ry = b.head_r, rx = std::min(0.8 * ry, 0.3 * p.width());
  const double head_v = ry / p.height() + 0.005;
  if (a.hair_style == HairStyle::kLong && !back)  // hair falling behind the shoulders
    p.rect(0.5 - 1.1 * rx / p.width(), head_v, 0.5 + 1.1 * rx / p.width(), b.shoulder + 0.1, a.hair);
  draw_legs_frontal(p, a, b, pose.stride);
  // Arms hang beside the torso; they swing a little forward/back with the stride.
  const double arm_thick = 0.14 * p.width();
  const double hand_v = b.waist + 0.05 + 0.02 * pose.stride;
  draw_arm(p, a, {0.17, b.shoulder + 0.02}, {0.08, hand_v}, arm_thick, 1.0);
  draw_arm(p, a, {0.83, b.shoulder + 0.02}, {0.92, b.waist + 0.05 - 0.02 * pose.stride}, arm_thick, 1.0);
  const std::vector<cv::Point> torso = {p.px(0.16, b.shoulder + 0.01), p.px(0.84, b.shoulder + 0.01),
                                        p.px(0.78, b.waist + 0.03), p.px(0.22, b.waist + 0.03)};
  p.poly_px(torso, a.upper);
  p.ellipse(0.2, b.shoulder + 0.025, 0.06 * p.width(), 0.025 * p.height(), a.upper);
  p.ellipse(0.8, b.shoulder + 0.025, 0.06 * p.width(), 0.025 * p.height(), a.upper);
  draw_pattern(p, a, b, torso, 0.16, 0.84);
  if (a.front_logo && !back) draw_logo(p, a, b);
  p.rect(0.5 - 0.35 * rx / p.width(), head_v, 0.5 + 0.35 * rx / p.width(), b.shoulder + 0.01, a.skin);  // neck
  const bool hair_covers = back && a.hair_style != HairStyle::kBald;
  p.ellipse(0.5, head_v, rx, ry, hair_covers ? a.hair : a.skin);
  if (!back && a.hair_style != HairStyle::kBald)  // hairline over the forehead
    p.ellipse(0.5, head_v - 0.55 * ry / p.height(), rx * 0.98, ry * 0.5, a.hair);
  if (back && a.hair_style == HairStyle::kLong)
    p.rect(0.5 - rx / p.width(), head_v, 0.5 + rx / p.width(), b.shoulder + 0.09, a.hair);
  if (!back && p.height() > 90) {  // eyes, once there are pixels for them
    const double eye_v = head_v - 0.05 * ry / p.height();
    p.ellipse(0.5 - 0.4 * rx / p.width(), eye_v, 0.1 * rx, 0.1 * rx, {30, 30, 30}, false);
    p.ellipse(0.5 + 0.4 * rx / p.width(), eye_v, 0.1 * rx, 0.1 * rx, {30, 30, 30}, false);
  }
  draw_headwear(p, a, 0.5, head_v, rx, ry, back ? -1 : 0);
  if (a.backpack) {
    if (back) {
      p.rect(0.25, b.shoulder + 0.03, 0.75, b.waist - 0.02, a.bag_colour);
      p.rect(0.32, b.waist - 0.12, 0.68, b.waist - 0.04, darker(a.bag_colour, 0.75));  // pocket
    } else {  // from the front only the straps show
      p.line(0.3, b.shoulder + 0.01, 0.3, b.waist - 0.06, 0.07 * p.width(), darker(a.bag_colour, 0.8));
      p.line(0.7, b.shoulder + 0.01, 0.7, b.waist - 0.06, 0.07 * p.width(), darker(a.bag_colour, 0.8));
    }
  }
  if (a.shoulder_bag) {
    // The person's left is the image's right when they face the camera.
    const bool right_in_image = a.bag_on_left != back;
    const double su = right_in_image ? 0.25 : 0.75, bu = right_in_image ? 0.86 : 0.14;
    p.line(su, b.shoulder + 0.01, bu, b.waist - 0.02, 0.05 * p.width(), darker(a.bag_colour, 0.7));
    p.rect(bu - 0.12, b.waist - 0.04, bu + 0.12, b.waist + 0.1, a.bag_colour);
  }
}

/// Side view drawn facing +u (right); View::kLeft mirrors it.
void draw_side(Painter& p, const Appearance& a, const Pose& pose) {
  const Body b = body_of(a, p.height());
  const double ry = b.head_r, rx = std::min(0.85 * ry, 0.42 * p.width());
  const double head_v = ry / p.height() + 0.005;
  const double arm_thick = 0.065 * p.height();
  const double arm_len = (b.waist + 0.05 - b.shoulder) * p.height();
  const auto hand_of = [&](double ang) {
    return cv::Point2d(0.5 + std::sin(ang) * arm_len / p.width(), b.shoulder + 0.02 + std::cos(ang) * arm_len / p.height());
  };
  const cv::Point2d shoulder(0.5, b.shoulder + 0.02);
  // Which shoulder bag side faces the camera: facing +u shows the person's left side.
  const bool facing_left_in_image = pose.view == View::kLeft;
  const bool bag_visible = a.shoulder_bag && (a.bag_on_left != facing_left_in_image);
  if (a.hair_style == HairStyle::kLong) p.rect(0.5 - 1.0 * rx / p.width(), head_v, 0.5, b.shoulder + 0.1, a.hair);
  draw_arm(p, a, shoulder, hand_of(0.35 * pose.stride), arm_thick, 0.8);  // far arm
  draw_legs_side(p, a, b, pose.stride);
  const std::vector<cv::Point> torso = {p.px(0.3, b.shoulder + 0.01), p.px(0.7, b.shoulder + 0.01),
                                        p.px(0.68, b.waist + 0.03), p.px(0.32, b.waist + 0.03)};
  p.poly_px(torso, a.upper);
  draw_pattern(p, a, b, torso, 0.3, 0.7);
  if (a.backpack) p.rect(0.08, b.shoulder + 0.03, 0.34, b.waist - 0.03, a.bag_colour);
  p.rect(0.5 - 0.3 * rx / p.width(), head_v, 0.5 + 0.3 * rx / p.width(), b.shoulder + 0.01, a.skin);  // neck
  // Head: hair colour at the back and top, the face toward the walking direction.
  const bool bald = a.hair_style == HairStyle::kBald;
  p.ellipse(0.5, head_v, rx, ry, bald ? a.skin : a.hair);
  if (!bald) p.ellipse(0.5 + 0.25 * rx / p.width(), head_v + 0.2 * ry / p.height(), rx * 0.75, ry * 0.75, a.skin);
  draw_headwear(p, a, 0.5, head_v, rx, ry, +1);
  if (bag_visible) {
    p.line(0.5, b.shoulder + 0.01, 0.52, b.waist - 0.03, 0.05 * p.height(), darker(a.bag_colour, 0.7));
    p.rect(0.36, b.waist - 0.04, 0.66, b.waist + 0.1, a.bag_colour);
  }
  draw_arm(p, a, shoulder, hand_of(-0.35 * pose.stride), arm_thick, 1.0);  // near arm, over the torso
}

/// Light from one side: scales the person's colours by up to +-12 % across the box.
void apply_shading(cv::Mat& image, const cv::Mat& alpha, double x0, double width, double shade) {
  if (shade == 0.0) return;
  for (int y = 0; y < image.rows; ++y) {
    auto* row = image.ptr<cv::Vec3b>(y);
    const auto* a = alpha.ptr<uchar>(y);
    for (int x = 0; x < image.cols; ++x) {
      if (!a[x]) continue;
      const double u = std::clamp((x - x0) / width, 0.0, 1.0);
      const double f = 1.0 + 0.12 * shade * (2 * u - 1);
      for (int k = 0; k < 3; ++k) row[x][k] = cv::saturate_cast<uchar>(row[x][k] * f);
    }
  }
}

}  // namespace

Appearance random_appearance(Rng& rng) {
  Appearance a;
  a.skin = jitter(rng, rng.pick(kSkin), 8);
  a.hair = jitter(rng, rng.pick(kHair), 8);
  a.upper = jitter(rng, rng.pick(kClothing), 12);
  a.upper_second = other_colour(rng, a.upper);
  a.lower = jitter(rng, rng.chance(0.8) ? rng.pick(kLowerClothing) : rng.pick(kClothing), 12);
  a.shoes = jitter(rng, rng.chance(0.8) ? rng.pick(kShoes) : rng.pick(kClothing), 8);
  a.headwear_colour = jitter(rng, rng.pick(kClothing), 10);
  a.bag_colour = jitter(rng, rng.pick(kClothing), 10);
  a.logo = other_colour(rng, a.upper);
  const double p = rng.uniform();
  a.pattern = p < 0.45 ? Pattern::kSolid
              : p < 0.6 ? Pattern::kHorizontalStripes
              : p < 0.72 ? Pattern::kVerticalStripes
              : p < 0.86 ? Pattern::kChecks
                         : Pattern::kTwoTone;
  a.stripes = static_cast<int>(rng.integer(3, 6));
  a.long_sleeves = rng.chance(0.6);
  const double l = rng.uniform();
  a.lower_kind = l < 0.72 ? LowerKind::kTrousers : l < 0.88 ? LowerKind::kShorts : LowerKind::kSkirt;
  const double h = rng.uniform();
  a.hair_style = h < 0.55 ? HairStyle::kShort : h < 0.88 ? HairStyle::kLong : HairStyle::kBald;
  const double w = rng.uniform();
  a.headwear = w < 0.75 ? Headwear::kNone : w < 0.9 ? Headwear::kCap : Headwear::kBeanie;
  a.backpack = rng.chance(0.3);
  a.shoulder_bag = !a.backpack && rng.chance(0.25);
  a.bag_on_left = rng.chance(0.5);
  a.front_logo = a.pattern == Pattern::kSolid && rng.chance(0.4);
  a.logo_shape = static_cast<int>(rng.integer(0, 2));
  a.height_scale = rng.uniform(0.88, 1.1);
  a.width_scale = rng.uniform(0.85, 1.18);
  a.head_scale = rng.uniform(0.9, 1.12);
  a.leg_ratio = rng.uniform(0.44, 0.5);
  return a;
}

double aspect_ratio(const Appearance& a, View view) {
  if (view == View::kFront || view == View::kBack) return 0.4 * a.width_scale;
  return 0.3 * a.width_scale + (a.backpack ? 0.04 : 0.0);
}

void render_person(const Appearance& a, const Pose& pose, cv::Point2d offset, cv::Size2d size, cv::Mat& image,
                   cv::Mat& alpha) {
  Painter painter(image, alpha, offset, size, pose.view == View::kLeft);
  if (pose.view == View::kFront || pose.view == View::kBack) draw_frontal(painter, a, pose);
  else draw_side(painter, a, pose);
  apply_shading(image, alpha, offset.x, size.width, pose.shade);
}

}  // namespace psearch::data::synth
