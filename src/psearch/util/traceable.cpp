#include "psearch/util/traceable.h"

#include <ATen/TracerMode.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/tensor.h>

namespace psearch::util {
namespace {

template <class T>
at::Tensor untraced_tensor(c10::ArrayRef<T> values, const at::TensorOptions& options) {
  at::tracer::impl::NoTracerDispatchMode untraced;
  return at::tensor(values, options);
}

}  // namespace

at::Tensor host_tensor(c10::ArrayRef<double> values, const at::TensorOptions& options) {
  return untraced_tensor(values, options);
}
at::Tensor host_tensor(c10::ArrayRef<float> values, const at::TensorOptions& options) {
  return untraced_tensor(values, options);
}
at::Tensor host_tensor(c10::ArrayRef<int64_t> values, const at::TensorOptions& options) {
  return untraced_tensor(values, options);
}

std::vector<at::Tensor> split_rows(const at::Tensor& rows, const std::vector<int64_t>& counts) {
  if (counts.size() == 1) return {rows};
  return rows.split_with_sizes(counts, 0);
}

at::Tensor row_numbers(const at::Tensor& rows) {
  return at::ones_like(rows.flatten(1).select(1, 0), rows.options().dtype(at::kLong)).cumsum(0).sub(1);
}

}  // namespace psearch::util
