#pragma once
/// The collective operations that model code needs while a data-parallel job trains
/// (docs/distributed.md): the OIM lookup table and queue are updated from the features and
/// labels of every rank, so all ranks hold the same memory after every step, and
/// BatchNorm layers that train use the statistics of the whole job's batch. Model code
/// calls these unconditionally; with no job installed (one process) they return their
/// input, so single-process training is unchanged.
#include <ATen/core/Tensor.h>

namespace psearch::distributed {

/// What a running job offers to model code (implemented by ProcessGroup).
class ModelCollectives {
 public:
  virtual ~ModelCollectives() = default;
  /// [n_r, ...] on rank r -> [n_0 + ... + n_{W-1}, ...] on every rank, rows in rank order
  /// (the order a single process would see the global batch in). n_r may differ per rank,
  /// and be 0. No gradient flows through it.
  virtual at::Tensor all_gather_rows(const at::Tensor& rows) = 0;
  /// The element-wise sum of `values` over the ranks, in place (same shape on every rank).
  virtual void all_reduce_sum(at::Tensor& values) = 0;
};

/// Makes `collectives` the job's for the lifetime of this object (the trainer holds one
/// while it runs); nesting is refused.
class ScopedModelCollectives {
 public:
  explicit ScopedModelCollectives(ModelCollectives* collectives);
  ~ScopedModelCollectives();
  ScopedModelCollectives(const ScopedModelCollectives&) = delete;
  ScopedModelCollectives& operator=(const ScopedModelCollectives&) = delete;
};

/// Whether a job is installed (the calls below then talk to the other ranks).
bool in_job();

/// The installed job's all_gather_rows; `rows` itself when none is installed.
at::Tensor all_gather_rows(const at::Tensor& rows);

/// The installed job's all_reduce_sum; leaves `values` as they are when none is installed.
void all_reduce_sum(at::Tensor& values);

}  // namespace psearch::distributed
