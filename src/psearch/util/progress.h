#pragma once
/// A terminal progress bar with rate and ETA, for long jobs (indexing, evaluation,
/// dataset generation). Draws on stderr, in place, at most every 100 ms; when stderr is
/// not a terminal (CI logs) it prints a plain line every 10% instead.
#include <chrono>
#include <cstdint>
#include <string>

namespace psearch::util {

class ProgressBar {
 public:
  /// `total` steps of `unit` (e.g. "img"); `label` is printed in front of the bar.
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();  ///< finishes the line if finish() was not called

  /// Advances by `n` steps.
  void advance(int64_t n = 1);
  /// Draws the final state and ends the line.
  void finish();

 private:
  void draw(bool final);

  std::string label_, unit_;
  int64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace psearch::util
