#include "psearch/util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace psearch::util {
namespace {

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", long(s / 3600), long(s / 60 % 60), long(s % 60));
  else std::snprintf(buf, sizeof buf, "%02ld:%02ld", long(s / 60), long(s % 60));
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 0)),
      tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

void ProgressBar::advance(int64_t n) {
  done_ = std::min(done_ + n, total_);
  draw(false);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  const auto now = std::chrono::steady_clock::now();
  const double fraction = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
  if (tty_) {
    if (!final && now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const int decile = static_cast<int>(fraction * 10);
    if (!final && (decile == last_decile_ || done_ == total_)) return;  // finish() prints the last line
    last_decile_ = decile;
  }
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "%s%s [%s] %ld/%ld %3.0f%% %.1f %s/s %s %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               long(done_), long(total_), fraction * 100, rate, unit_.c_str(), final ? "elapsed" : "ETA",
               format_duration(final ? elapsed : eta).c_str(), (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace psearch::util
