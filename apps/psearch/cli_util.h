#pragma once
// Small helpers shared by the subcommands.
#include <c10/core/Device.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace psearch::cli {

/// "cpu", "cuda" or "cuda:N"; a CUDA device on a machine without one is an error
/// that says so instead of failing deep inside LibTorch.
c10::Device parse_device(const std::string& text);

/// Runs `fn` `warmup` times untimed, then `repeat` times; returns the median in ms.
/// Waits for the device after each run so GPU work is counted.
double median_ms(const std::function<void()>& fn, int repeat, int warmup, const c10::Device& device);

}  // namespace psearch::cli
