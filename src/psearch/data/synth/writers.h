#pragma once
/// Annotation writers of the two formats. They read a rendered plan (visibility known)
/// and write every annotation file below `root`; images are written while rendering.
#include <filesystem>
#include <string>
#include <vector>

#include "psearch/data/synth/plan.h"
#include "psearch/data/synth/synth.h"

namespace psearch::data::synth {

/// The image file of frame `f` relative to the dataset root.
std::string image_relative_path(Format format, const FramePlan& f);

/// Entries of the dataset root that a dataset of `format` owns (replaced by --force).
std::vector<std::string> owned_entries(Format format);

/// CUHK-SYSU marks a box "hard" when most of the person is hidden.
bool is_hard(const PersonInstance& p);

void write_prw_annotations(const Plan& plan, const std::filesystem::path& root, uint64_t seed, SynthStats& stats);
void write_cuhk_annotations(const Plan& plan, const std::filesystem::path& root, uint64_t seed, SynthStats& stats);

}  // namespace psearch::data::synth
