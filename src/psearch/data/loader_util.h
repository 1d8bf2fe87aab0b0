#pragma once
/// Helpers shared by the CUHK-SYSU and PRW loaders (internal to src/psearch/data).
#include <cmath>
#include <stdexcept>
#include <string>

#include "psearch/util/file_status.h"

namespace psearch::data::detail {

/// Coordinates beyond this many pixels are corruption, not annotations (and would not
/// survive the conversion to float boxes exactly).
constexpr double kMaxCoordinate = 1e7;

using util::is_directory;
using util::is_regular_file;

inline std::string join_path(const std::string& root, const std::string& relative) {
  if (root.empty()) return relative;
  return root.back() == '/' ? root + relative : root + "/" + relative;
}

/// Throws "<path>: file not found (expected <what>)" unless `path` is a regular file.
inline void require_file(const std::string& path, const std::string& what) {
  if (!is_regular_file(path)) {
    throw std::runtime_error(path + ": file not found (expected " + what + ")");
  }
}

/// Throws "<root>: dataset root is not a directory" when it is not one.
inline void require_root(const std::string& root, const std::string& dataset) {
  if (!is_directory(root)) {
    throw std::runtime_error(root + ": not a directory (expected the " + dataset + " dataset root)");
  }
}

/// Image names end up in file paths: refuse anything that is not a plain file name.
inline bool is_plain_file_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255) return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
  }
  return true;
}

/// Printable form of a name for messages (control bytes escaped, long names cut).
inline std::string quote_name(const std::string& name) {
  std::string out = "'";
  for (size_t i = 0; i < name.size() && i < 80; ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > 80) out += "...";
  return out + "'";
}

inline bool plausible_coordinate(double v) { return std::isfinite(v) && std::fabs(v) <= kMaxCoordinate; }

}  // namespace psearch::data::detail
