#include "psearch/data/synth/files.h"

#include <ftw.h>
#include <sys/stat.h>
#include <opencv2/imgcodecs.hpp>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "psearch/util/atomic_file.h"

namespace psearch::data::synth {

namespace fs = std::filesystem;

fs::path temporary_path(const fs::path& path) {
  // The process id keeps two generators writing the same folder from sharing a temp file.
  return path.parent_path() / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()));
}

void commit_file(const fs::path& tmp, const fs::path& path) {
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(path.string() + ": cannot write (" + ec.message() + ")");
  }
}

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  util::write_bytes_atomically(path.string(), bytes);
}

void write_image_atomically(const fs::path& path, const cv::Mat& image, int jpeg_quality) {
  const std::string ext = path.extension().string();
  std::vector<uchar> buf;
  const std::vector<int> params =
      ext == ".png" ? std::vector<int>{cv::IMWRITE_PNG_COMPRESSION, 9} : std::vector<int>{cv::IMWRITE_JPEG_QUALITY, jpeg_quality};
  if (!cv::imencode(ext == ".png" ? ".png" : ".jpg", image, buf, params))
    throw std::runtime_error(path.string() + ": image encoding failed");
  write_file_atomically(path, std::string(buf.begin(), buf.end()));
}

void remove_tree(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  const auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); };
  if (::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    throw std::runtime_error(path.string() + ": cannot remove (" + std::strerror(errno) + ")");
}

void prepare_output_dir(const fs::path& dir, bool force, const std::vector<std::string>& owned) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw std::runtime_error(dir.string() + ": exists and is not a directory");
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    if (!force) throw std::runtime_error(dir.string() + ": directory is not empty (use --force to overwrite)");
    for (const auto& entry : owned) remove_tree(dir / entry);
  }
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create directory (" + ec.message() + ")");
}

}  // namespace psearch::data::synth
