#pragma once
/// Online Instance Matching loss (OIM; Xiao et al., CVPR 2017), the re-ID loss of the
/// OIM-base, NAE and NAE+ heads (NAE paper Sec. 3.1). See docs/losses.md.
///
/// Labels, one per RoI (the convention of psearch::data, where kUnlabeled = -1):
///   0 .. num_pids-1   labeled identity = row of the lookup table; trained with cross
///                     entropy, its LUT row is updated;
///   kOimUnlabeled     unlabeled person: no loss term, its feature is pushed into the queue;
///   < kOimUnlabeled   background (use kOimBackground): ignored entirely.
/// Labels >= num_pids are refused. (The official NAE4PS code shifts ids by one and marks
/// unlabeled persons 5555, i.e. 5554 after the shift; see docs/losses.md for the mapping.)
#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace psearch::modeling {

/// An unlabeled person (equal to psearch::data::kUnlabeled).
constexpr int64_t kOimUnlabeled = -1;
/// A background RoI; every label below kOimUnlabeled means the same.
constexpr int64_t kOimBackground = -2;

namespace detail {
struct OimUpdatePlan;  // what one batch writes into the memory (oim_loss.cpp)
}

struct OIMLossOptions {
  explicit OIMLossOptions(int64_t num_pids) : num_pids_(num_pids) {}
  /// Embedding dimension D.
  TORCH_ARG(int64_t, num_features) = 256;
  /// Labeled training identities: rows of the lookup table (482 PRW, 5532 CUHK-SYSU).
  TORCH_ARG(int64_t, num_pids);
  /// Rows of the circular queue of unlabeled features (0 disables the queue).
  TORCH_ARG(int64_t, num_cq_size) = 5000;
  /// m in lut[y] <- normalize(m * lut[y] + (1 - m) * x).
  TORCH_ARG(double, oim_momentum) = 0.5;
  /// Temperature: logits = oim_scalar * <x, table row>.
  TORCH_ARG(double, oim_scalar) = 30.0;
};

/// The OIM loss with its memory as buffers, so state_dict() / checkpoints carry it:
///   "lut"       [num_pids, D]     L2-normalised identity prototypes (zeros at start);
///   "cq"        [num_cq_size, D]  features of recent unlabeled persons (zeros at start);
///   "header_cq" [] int64          next queue row to overwrite.
///
/// forward() returns the loss and, in training mode, then updates the memory: each labeled
/// feature moves its LUT row (in batch order, so an identity seen twice is updated twice)
/// and each unlabeled feature is written to the queue at header_cq, wrapping around.
/// Updating after the forward rather than inside backward (as the original OIM does)
/// gives the same sequence of memory states the forward passes see, because the logits
/// and their gradient use a copy of [lut; cq] taken before the update; and it keeps the
/// memory correct when no backward follows (a batch without labeled persons has a
/// constant loss, yet its unlabeled persons must still enter the queue) or when backward
/// runs more than once. A checkpoint written after the optimizer step therefore resumes
/// exactly.
class OIMLossImpl : public torch::nn::Module {
 public:
  explicit OIMLossImpl(const OIMLossOptions& options);

  /// features: [N, D], L2-normalised (NAE: the angle x / |x|); labels: [N] int64 as above.
  /// Returns the mean cross entropy over labeled rows of the logits; exactly 0 (with a
  /// zero gradient) when none is labeled. Gradient flows to `features` only.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& labels);

  /// [N, D] -> [N, num_pids + num_cq_size] = oim_scalar * features @ [lut; cq]^T, with no
  /// side effects.
  at::Tensor logits(const at::Tensor& features) const;

  /// The memory update that forward() applies in training mode, on its own.
  void update(const at::Tensor& features, const at::Tensor& labels);

  /// Current value of header_cq.
  int64_t queue_header() const;

  const OIMLossOptions& options() const { return options_; }

  at::Tensor lut, cq, header_cq;

 private:
  void apply_update(const at::Tensor& features, const detail::OimUpdatePlan& plan);

  OIMLossOptions options_;
};
TORCH_MODULE(OIMLoss);

/// Mean cross entropy of logits [N, C] over the rows whose label lies in [0, C); other
/// rows are ignored. 0 (exactly, with zero gradient) when there is no such row, where
/// torch's cross_entropy would give NaN.
at::Tensor oim_cross_entropy(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace psearch::modeling
