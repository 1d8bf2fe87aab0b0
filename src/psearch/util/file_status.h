#pragma once
/// Whether a path is a file or a folder, with POSIX stat() rather than std::filesystem:
/// libtorch.so exports its own copies of std::filesystem functions, which the dynamic linker
/// prefers in every binary linked with LibTorch, and some of them crash (remove_all calls a
/// null weak symbol).
#include <sys/stat.h>

#include <string>

namespace psearch::util {

inline bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace psearch::util
