#pragma once
/// The format-independent plan of a synthetic dataset: cameras, identities, and for every
/// frame who stands where, seen from which side, behind what. Rendering and the PRW /
/// CUHK-SYSU writers only read it, so a dataset is fully determined by the plan's seed.
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "psearch/data/synth/person.h"
#include "psearch/data/synth/scene.h"

namespace psearch::data::synth {

enum class Format { kPrw, kCuhkSysu };
enum class SizePreset { kTiny, kSmall, kMedium, kLarge };

/// What the planner needs; `preset_config` fills it from a size preset.
struct PlanConfig {
  Format format = Format::kPrw;
  int images = 0;
  int identities = 0;
  int cameras = 0;          ///< PRW cameras, or CUHK-SYSU scenes (each a background and perspective)
  cv::Size image_size;      ///< PRW frame size; CUHK-SYSU scene sizes vary around it
  double test_images = 0.5;      ///< fraction of images in the test split (the CUHK-SYSU pool)
  double test_identities = 0.5;  ///< fraction of identities that are test identities
  int min_appearances = 2, max_appearances = 4;  ///< per identity, within its split
  int max_labeled_per_image = 5;
  int max_passersby = 3;         ///< unlabeled people per image (plus crowds)
  double distractor_images = 0.08;  ///< fraction of each split without any labeled person
};

PlanConfig preset_config(Format format, SizePreset size);

/// One person in one frame.
struct PersonInstance {
  int identity = -1;     ///< index into Plan::identities; -1: an unlabeled passer-by
  Appearance passerby;   ///< the look of a passer-by (identities use their own)
  Pose pose;
  cv::Rect2d body;       ///< where the body is drawn (float pixels)
  cv::Rect2d box;        ///< the annotated box: body plus annotator noise, rounded per format
  double visible = 1.0;  ///< fraction of the silhouette left visible; set by rendering
};

struct FramePlan {
  std::string name;  ///< file name without ".jpg"
  int camera = 0;
  bool test = false;
  bool distractor = false;  ///< planned without labeled persons
  cv::Size size;
  std::vector<PersonInstance> persons;  ///< in drawing order is NOT implied; see render
  std::vector<Occluder> occluders;      ///< this frame's transient ones (cars, bushes); fixed ones come from the camera
  double brightness = 1.0, noise = 2.0, blur = 0.0;
  uint64_t seed = 0;  ///< the frame's own random stream for rendering
};

struct Identity {
  Appearance look;
  bool test = false;
  int64_t pid = 0;  ///< the dataset's id: PRW integer id, CUHK-SYSU number of "p%05d"
};

struct Plan {
  Format format = Format::kPrw;
  std::vector<CameraStyle> cameras;
  std::vector<Identity> identities;
  std::vector<FramePlan> frames;
};

/// Plans a dataset. Throws std::invalid_argument (with the option to change) when the
/// configuration cannot hold every identity in two cameras of its split.
Plan make_plan(const PlanConfig& config, uint64_t seed);

}  // namespace psearch::data::synth
