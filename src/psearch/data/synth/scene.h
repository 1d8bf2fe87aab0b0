#pragma once
/// Synthetic cameras: a textured background per camera, its perspective (how tall a
/// person is at each image row), its colour cast, and the objects that hide people.
#include <opencv2/core.hpp>

#include <vector>

#include "psearch/data/synth/rng.h"

namespace psearch::data::synth {

enum class OccluderKind { kPole, kCar, kBench, kBush, kBin };

/// An object standing on the ground; it hides whatever stands behind it (smaller foot_y).
struct Occluder {
  OccluderKind kind = OccluderKind::kPole;
  double x = 0;       ///< centre, pixels
  double foot_y = 0;  ///< ground contact row, pixels
  double width = 0, height = 0;
  cv::Vec3b colour;
};

enum class UpperKind { kSkyline, kWall };
enum class GroundKind { kTiles, kAsphalt, kGrass };

struct CameraStyle {
  cv::Size size;
  uint64_t texture_seed = 0;
  double horizon = 0.3;        ///< row (fraction of height) where people shrink to nothing
  double bottom_height = 0.7;  ///< person height (fraction of image height) at the bottom row
  double min_height = 0.2;     ///< smallest person drawn (fraction of image height)
  cv::Vec3d cast{1, 1, 1};     ///< per-channel gain (BGR): the camera's colour cast
  double shade = 0;            ///< light side for people, -1..1
  UpperKind upper = UpperKind::kSkyline;
  GroundKind ground = GroundKind::kTiles;
  cv::Vec3b ground_colour, upper_colour, sky_top, sky_bottom;
  std::vector<Occluder> fixed_occluders;  ///< poles, benches... present in every frame

  /// Height in pixels of an average person whose feet are at row `foot_y`.
  double person_height(double foot_y) const;
  /// The row where an average person is `height` pixels tall.
  double foot_row(double height) const;
};

/// A random camera of the given image size.
CameraStyle random_camera(Rng& rng, cv::Size size);

/// A random occluder near row `foot_y`, sized by the camera's perspective. `fixed`
/// (present in every frame of the camera) excludes cars.
Occluder random_occluder(Rng& rng, const CameraStyle& cam, double x, double foot_y, bool fixed);

/// The camera's static background (sky or wall, ground texture, trees, buildings).
cv::Mat render_background(const CameraStyle& cam);

/// Draws `o` on the image and marks its pixels with `id` in the CV_16UC1 id map.
void draw_occluder(const Occluder& o, cv::Mat& image, cv::Mat& ids, uint16_t id);

/// Camera response for one frame: colour cast and brightness (a lookup table), then
/// sensor noise of standard deviation `noise` drawn from `rng`.
void apply_camera_response(cv::Mat& image, const cv::Vec3d& cast, double brightness, double noise, Rng& rng);

}  // namespace psearch::data::synth
