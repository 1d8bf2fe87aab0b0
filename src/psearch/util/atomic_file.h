#pragma once
/// Writing files so that readers never see a half-written one and an interrupted or failed
/// job leaves the previous version intact: the bytes go to "<path>.tmp" with write(2),
/// are flushed to the disk (fsync) and only then renamed over <path>. A failure at any step
/// (a full disk, a read-only folder) removes the temporary file and throws one line that
/// names the file and gives the system's reason ("No space left on device").
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace psearch::util {

/// Creates the parent folder and writes `bytes` atomically to `path`.
/// Throws std::runtime_error "<path>: cannot write: <reason> (the previous file, if any, is intact)".
void write_bytes_atomically(const std::string& path, std::string_view bytes);

/// Calls `write` on an in-memory stream, then writes what it produced atomically. The
/// stream never fails, so serialisers that cannot cope with a failing stream (LibTorch's
/// zip writer aborts the process from a destructor) never see the disk. An exception from
/// `write` (c10::Error included) becomes a one-line std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Convenience for text.
void write_text_atomically(const std::string& path, const std::string& text);

/// Appends one line to a log file (creating it), checking that it reached the file.
/// Throws std::runtime_error "<path>: cannot append: <reason>".
void append_line(const std::string& path, const std::string& line);

/// Creates `dir` (and its parents) and checks that a file can be created in it, so a
/// command fails before a long job instead of after it. Throws std::runtime_error
/// "<dir>: cannot write output here: <reason>".
void ensure_writable_directory(const std::string& dir);

}  // namespace psearch::util
