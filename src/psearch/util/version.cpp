#include "psearch/util/version.h"

#include <torch/version.h>

namespace psearch {

std::string version() { return PSEARCH_VERSION; }

std::string build_info() {
#ifdef PSEARCH_WITH_CUDA
  const char* cuda = "CUDA kernels: yes";
#else
  const char* cuda = "CUDA kernels: no";
#endif
  return "psearch " + version() + " (LibTorch " + TORCH_VERSION + ", " + cuda + ")";
}

}  // namespace psearch
