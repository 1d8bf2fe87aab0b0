#pragma once
// Helpers shared by the C++ tests.
#include <ftw.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <exception>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace psearch::test {

/// Directory of the fixtures written by tests/python/make_fixtures.py.
inline std::string fixtures_dir() {
  const char* env = std::getenv("PSEARCH_FIXTURES_DIR");
  return env && *env ? env : PSEARCH_FIXTURES_DIR;
}
inline std::string fixture(const std::string& name) { return fixtures_dir() + "/" + name; }

/// Message of the exception (std::exception, c10::Error included) thrown by `f`, "" if none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

/// A fresh directory per test under the system temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("psearch_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  // Not std::filesystem::remove_all: libtorch.so exports its own copy of it, which the
  // dynamic linker prefers and which crashes (it calls a weak symbol that is null).
  ~TempDir() {
    ::nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// Writes `text` to `name` (sub-directories created) and returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::filesystem::path p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }
  /// path() / name as a string.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Sets an environment variable for a scope and restores its earlier value (or absence).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace psearch::test
