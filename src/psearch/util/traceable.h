#pragma once
/// Helpers that keep inference code correct under LibTorch's tracer (`psearch export`,
/// src/psearch/deploy/). The tracer records operators, not C++: an int read from
/// tensor.size() is frozen into the graph as a constant, and memory filled by hand is not
/// recorded at all. Inference code that must survive tracing therefore makes host-side
/// tensors with host_tensor and splits per-image rows with split_rows.
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <vector>

namespace psearch::util {

/// [values.size()] tensor of `options` (dtype conversion included) holding `values`.
/// (at::tensor is traced as an uninitialised aten::empty, because it fills the memory
/// itself; made with the tracer paused, the tensor enters the graph as a constant.)
at::Tensor host_tensor(c10::ArrayRef<double> values, const at::TensorOptions& options);
at::Tensor host_tensor(c10::ArrayRef<float> values, const at::TensorOptions& options);
at::Tensor host_tensor(c10::ArrayRef<int64_t> values, const at::TensorOptions& options);

/// `rows` ([sum(counts), ...]) split into one block per image, counts[i] rows each. One
/// image gets the whole tensor, with no row count fixed, so that a traced graph follows
/// the actual number of rows (detections, query boxes) instead of the traced one.
std::vector<at::Tensor> split_rows(const at::Tensor& rows, const std::vector<int64_t>& counts);

/// [N] int64 0, 1, ..., N-1 for the N rows of `rows` (at::arange(rows.size(0)) with N
/// taken from the tensor at run time, not frozen by tracing).
at::Tensor row_numbers(const at::Tensor& rows);

}  // namespace psearch::util
