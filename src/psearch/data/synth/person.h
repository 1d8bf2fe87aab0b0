#pragma once
/// Synthetic persons: an identity's appearance (kept across cameras) and its rendering
/// from one viewpoint into a colour patch with an alpha mask.
#include <opencv2/core.hpp>

#include "psearch/data/synth/rng.h"

namespace psearch::data::synth {

enum class Pattern { kSolid, kHorizontalStripes, kVerticalStripes, kChecks, kTwoTone };
enum class LowerKind { kTrousers, kShorts, kSkirt };
enum class HairStyle { kShort, kLong, kBald };
enum class Headwear { kNone, kCap, kBeanie };
/// The side of the person that faces the camera.
enum class View { kFront, kBack, kLeft, kRight };

/// Everything that makes an identity recognisable. Colours are BGR.
struct Appearance {
  cv::Vec3b skin, hair, upper, upper_second, lower, shoes, headwear_colour, bag_colour, logo;
  Pattern pattern = Pattern::kSolid;
  int stripes = 4;  ///< stripe / check count across the torso
  bool long_sleeves = true;
  LowerKind lower_kind = LowerKind::kTrousers;
  HairStyle hair_style = HairStyle::kShort;
  Headwear headwear = Headwear::kNone;
  bool backpack = false;
  bool shoulder_bag = false;
  bool bag_on_left = false;  ///< shoulder bag hangs at the person's left side
  bool front_logo = false;   ///< a print on the chest, seen only from the front
  int logo_shape = 0;        ///< 0 circle, 1 triangle, 2 square
  double height_scale = 1.0;  ///< body height relative to the camera's perspective model
  double width_scale = 1.0;   ///< build (box width / height multiplier)
  double head_scale = 1.0;
  double leg_ratio = 0.47;    ///< fraction of the height below the waist
};

/// A random appearance; identities and unlabeled passers-by both come from here.
Appearance random_appearance(Rng& rng);

/// Box width / height ratio of a person seen from `view` (side views are narrower; a
/// backpack sticks out sideways).
double aspect_ratio(const Appearance& a, View view);

/// One pose of a person inside its box.
struct Pose {
  View view = View::kFront;
  double stride = 0.0;  ///< walking phase in [-1, 1]: leg and arm swing
  double shade = 0.0;   ///< light from the left (-1) or right (+1): brightens that side
};

/// Renders the person into `image` (CV_8UC3) and `alpha` (CV_8UC1, coverage 0..255), both
/// of the same size, with the body spanning the box (offset, offset + size) in patch pixels.
/// Both images must be zero-initialised by the caller.
void render_person(const Appearance& a, const Pose& pose, cv::Point2d offset, cv::Size2d size, cv::Mat& image,
                   cv::Mat& alpha);

}  // namespace psearch::data::synth
