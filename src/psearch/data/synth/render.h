#pragma once
/// Turns a planned frame into pixels: background, shadows, people and occluders in depth
/// order, camera blur, colour cast, brightness and noise.
#include <opencv2/core.hpp>

#include <cstddef>
#include <functional>
#include <vector>

#include "psearch/data/synth/plan.h"

namespace psearch::data::synth {

/// Renders frame `f` over its camera's `background` and stores each person's visible
/// fraction in `f.persons[i].visible`. Depends only on the plan, so any thread may render
/// any frame and the pixels are the same.
cv::Mat render_frame(const Plan& plan, FramePlan& f, const cv::Mat& background);

/// Static backgrounds of all cameras, rendered on `threads` threads.
std::vector<cv::Mat> render_backgrounds(const Plan& plan, int threads);

/// Calls `job(i)` for i in [0, n) on `threads` threads (the calling thread waits and calls
/// `tick(done)` about every 100 ms). The first exception a job throws stops the others
/// and is rethrown here.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& job,
                  const std::function<void(size_t)>& tick = {});

}  // namespace psearch::data::synth
