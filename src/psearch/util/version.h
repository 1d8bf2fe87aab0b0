#pragma once
#include <string>

namespace psearch {
/// The library version, e.g. "0.1.0" (from CMake's project version).
std::string version();
/// A one-line description of the build: version, LibTorch version, CUDA kernels on/off.
std::string build_info();
}  // namespace psearch
