#pragma once
/// Writing files so that readers never see a half-written one and an interrupted job
/// leaves the previous version intact: write to "<path>.tmp", then rename over <path>.
#include <functional>
#include <iosfwd>
#include <string>

namespace psearch::util {

/// Creates the parent folder, calls `write` on a stream to "<path>.tmp" and renames it to
/// `path`. Throws std::runtime_error naming the path when any step fails (the temporary
/// file is removed then).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Convenience for text.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace psearch::util
