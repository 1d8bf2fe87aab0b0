#pragma once
/// String predicates C++17's std::string lacks (std::string::starts_with is C++20).
#include <string>

namespace psearch::util {

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The part of a LibTorch error message (c10::Error::what_without_backtrace) worth showing a
/// user: its first line, without the "[enforce fail at inline_container.cc:180] " source
/// location that LibTorch's CAFFE_ENFORCE puts in front.
inline std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  if (starts_with(line, "[enforce fail at ")) {
    const size_t end = line.find("] ");
    if (end != std::string::npos) line = line.substr(end + 2);
  }
  // miniz errors go on with a paragraph of advice; the reason is what comes before it.
  const size_t advice = line.find(" This is an internal miniz error");
  if (advice != std::string::npos) line = line.substr(0, advice);
  return line;
}

}  // namespace psearch::util
