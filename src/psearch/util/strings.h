#pragma once
/// String predicates C++17's std::string lacks (std::string::starts_with is C++20).
#include <string>

namespace psearch::util {

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace psearch::util
