#include "psearch/util/atomic_file.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "psearch/util/file_status.h"
#include "psearch/util/strings.h"

namespace psearch::util {
namespace {

std::string reason(int error) { return std::strerror(error); }

/// mkdir -p with POSIX calls (see file_status.h for why not std::filesystem).
void make_directories(const std::string& dir) {
  if (dir.empty() || is_directory(dir)) return;
  const size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) make_directories(dir.substr(0, slash));
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    throw std::runtime_error(dir + ": cannot create folder: " + reason(errno));
  if (!is_directory(dir)) throw std::runtime_error(dir + ": exists and is not a folder");
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash == 0 ? 1 : slash);
}

/// Writes all of `bytes` to `fd`; returns 0 or the errno of the failing call.
int write_all(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}


}  // namespace

void write_bytes_atomically(const std::string& path, std::string_view bytes) {
  make_directories(parent_of(path));
  const std::string tmp = path + ".tmp";
  const auto fail = [&](int error) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot write: " + reason(error) + " (the previous file, if any, is intact)");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(errno);
  int error = write_all(fd, bytes);
  // fsync before rename: after a crash the new name must not point at unwritten blocks.
  if (error == 0 && ::fsync(fd) != 0 && errno != EINVAL) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) fail(error);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  std::ostringstream buffer(std::ios::binary);
  try {
    write(buffer);
  } catch (const c10::Error& e) {
    throw std::runtime_error(path + ": cannot serialise: " + util::first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": cannot serialise: " + util::first_line(e.what()));
  }
  write_bytes_atomically(path, buffer.str());
}

void write_text_atomically(const std::string& path, const std::string& text) { write_bytes_atomically(path, text); }

void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) throw std::runtime_error(path + ": cannot append: " + reason(errno));
  int error = write_all(fd, line + "\n");
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) throw std::runtime_error(path + ": cannot append: " + reason(error));
}

void ensure_writable_directory(const std::string& dir) {
  make_directories(dir);  // its error names the folder that could not be made
  std::string probe = (dir.empty() ? std::string(".") : dir) + "/.psearch-write-test-XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) throw std::runtime_error(dir + ": cannot write output here: " + reason(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace psearch::util
