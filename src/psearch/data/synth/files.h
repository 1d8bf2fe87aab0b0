#pragma once
/// File output for the generator: every file goes through a temporary name in its own
/// directory and a rename, so a reader (or a crash) never sees half a file.
#include <opencv2/core.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace psearch::data::synth {

/// A temporary name next to `path` (same directory, so the rename is atomic).
std::filesystem::path temporary_path(const std::filesystem::path& path);

/// Moves `tmp` onto `path`; throws std::runtime_error naming `path` on failure.
void commit_file(const std::filesystem::path& tmp, const std::filesystem::path& path);

void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

/// JPEG (fixed quality, so the same pixels give the same bytes) or PNG, chosen by the
/// extension of `path`.
void write_image_atomically(const std::filesystem::path& path, const cv::Mat& image, int jpeg_quality = 90);

/// Removes `path` and everything below it (no error if it does not exist); throws
/// std::runtime_error naming the path on failure. Not std::filesystem::remove_all:
/// libtorch.so exports its own copy of it, which the dynamic linker may prefer and which
/// crashes in processes that load LibTorch.
void remove_tree(const std::filesystem::path& path);

/// Creates `dir` if needed. A directory that already holds files is refused unless
/// `force`; then only `owned` entries (the paths this dataset writes) are removed first,
/// so stale frames of a previous run cannot linger and nothing else is touched.
void prepare_output_dir(const std::filesystem::path& dir, bool force, const std::vector<std::string>& owned);

}  // namespace psearch::data::synth
