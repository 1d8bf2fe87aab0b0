#pragma once
/// A data-parallel job on PyTorch's own distributed engine, c10d, from C++: the TCP store
/// rendezvous that torchrun uses (rank 0 hosts it at MASTER_ADDR:MASTER_PORT), Gloo
/// process groups for CPU training, NCCL for CUDA (builds with CUDA only), and c10d's
/// Reducer (the engine under torch.nn.parallel.DistributedDataParallel) for the gradients:
/// bucketed all-reduces launched from autograd hooks while backward still runs, averaged
/// over the ranks. See docs/distributed.md.
///
/// Two c10d groups are used: one carries only the Reducer's bucket all-reduces, the other
/// every collective of the trainer and the model (OIM memory, stop requests, log values).
/// Collectives on one group must be issued in the same order on every rank; keeping the
/// Reducer's hook-driven traffic on its own group means the two streams cannot interleave
/// differently on different ranks.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "psearch/distributed/collectives.h"
#include "psearch/distributed/environment.h"

namespace psearch::distributed {

class ProcessGroup : public ModelCollectives {
 public:
  /// Joins the job `env` describes: waits up to `timeout` for every rank to reach the store,
  /// then creates the groups for `device` (CPU: Gloo over the interface that reaches
  /// MASTER_ADDR; CUDA: NCCL on cuda:local_rank). Every later collective also fails after
  /// `timeout`, so a rank that dies stops the others with an error instead of a hang.
  /// Throws std::runtime_error (one line) when the store cannot be reached or created.
  ProcessGroup(const Environment& env, c10::Device device, std::chrono::milliseconds timeout);
  ~ProcessGroup() override;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }

  /// Refuses to go on unless every rank passes the same `value` (rank 0's is the reference):
  /// throws std::runtime_error "`what` differs between rank 0 and rank r: ...". Used for the
  /// config and model type, so mismatched launches fail at start.
  void require_same(const std::string& what, const std::string& value);

  /// Copies rank 0's values into `tensors` on every rank (in place).
  void broadcast_from_rank0(std::vector<at::Tensor>& tensors);

  /// True on every rank when `flag` is true on any rank (a stop request, an error).
  bool any(bool flag);

  /// Element-wise mean over the ranks of `values` (log lines show job-wide losses).
  std::vector<double> mean(const std::vector<double>& values);

  /// Waits until every rank has arrived.
  void barrier();

  at::Tensor all_gather_rows(const at::Tensor& rows) override;
  void all_reduce_sum(at::Tensor& values) override;

  struct Groups;  // the c10d objects (process_group.cpp)
  Groups& groups() { return *groups_; }

 private:
  Environment env_;
  c10::Device device_;
  std::unique_ptr<Groups> groups_;
};

/// Averages the gradients of `parameters` over the ranks with c10d's Reducer: buckets of
/// about `bucket_mb` MiB, each all-reduced as soon as backward has produced all its
/// gradients. Parameters that get no gradient in an iteration (a head a batch does not
/// reach) count as zero, as in DistributedDataParallel(find_unused_parameters=True).
class GradientAverager {
 public:
  GradientAverager(ProcessGroup& group, std::vector<at::Tensor> parameters, int64_t bucket_mb = 25);
  ~GradientAverager();
  /// loss.backward(), after which every parameter's .grad() holds the mean over the ranks.
  /// A rank that stopped (or a timeout) becomes a one-line std::runtime_error.
  void backward(const at::Tensor& loss);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace psearch::distributed
