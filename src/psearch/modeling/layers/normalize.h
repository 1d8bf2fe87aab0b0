#pragma once
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

namespace psearch::modeling {

/// Rows of x [N, D] scaled to unit L2 norm (all-zero rows stay zero).
inline at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12); }

}  // namespace psearch::modeling
