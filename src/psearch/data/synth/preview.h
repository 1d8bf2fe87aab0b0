#pragma once
/// A contact sheet of a few generated frames with their annotations drawn in (labeled
/// boxes green with their id, hard ones orange, unlabeled ones yellow), for docs and eyes.
#include <opencv2/core.hpp>

#include <vector>

#include "psearch/data/synth/plan.h"

namespace psearch::data::synth {

/// Up to `count` frames worth showing: test frames with labeled people from different
/// cameras first, and a distractor frame when there is one.
std::vector<size_t> preview_frames(const Plan& plan, size_t count = 6);

/// Tiles `images` (the rendered frames `frames` of `plan`) three per row.
cv::Mat contact_sheet(const Plan& plan, const std::vector<size_t>& frames, const std::vector<cv::Mat>& images);

}  // namespace psearch::data::synth
