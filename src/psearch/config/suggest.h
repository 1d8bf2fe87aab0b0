#pragma once
// Internal to src/psearch/config: "did you mean" suggestions for misspelt keys.
#include <string>
#include <vector>

namespace psearch::config::detail {

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
/// two adjacent characters ("trian" -> "train") each cost 1.
size_t edit_distance(const std::string& a, const std::string& b);

/// Whether `candidate` is close enough to `typed` to be suggested: distance at most 1 for
/// short names, growing to 3 for long ones, so "lrr" -> "lr" but not "lr" -> "gamma".
bool is_close(const std::string& typed, const std::string& candidate);

/// The closest of `candidates` to `typed` (the first of equally close ones), or "" when
/// none is close.
std::string closest(const std::string& typed, const std::vector<std::string>& candidates);

}  // namespace psearch::config::detail
