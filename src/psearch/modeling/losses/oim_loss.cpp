#include "psearch/modeling/losses/oim_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "psearch/data/dataset.h"
#include "psearch/distributed/collectives.h"

namespace psearch::modeling {

static_assert(kOimUnlabeled == data::kUnlabeled,
              "OIM labels take dataset pids as they are: one value for unlabeled persons");

namespace detail {

/// Labeled samples split into rounds in which every identity occurs at most once: round r
/// holds the r-th occurrence of each identity. Applying the rounds in order reproduces
/// the sample-by-sample update of the original OIM while vectorising each round (an
/// index_copy_ with repeated indices would keep an arbitrary one of the writes).
struct LutRound {
  std::vector<int64_t> samples;  // rows of the batch
  std::vector<int64_t> ids;      // their LUT rows, all distinct
};

struct OimUpdatePlan {
  std::vector<LutRound> rounds;
  std::vector<int64_t> unlabeled;  // rows of the batch, in batch order
};

}  // namespace detail

namespace {

using detail::LutRound;
using UpdatePlan = detail::OimUpdatePlan;

void check_labels(const at::Tensor& labels, int64_t rows) {
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == rows, "OIM labels must be [", rows, "], got ",
              labels.sizes());
  TORCH_CHECK(labels.scalar_type() == at::kLong, "OIM labels must be int64, got ",
              labels.scalar_type());
}

at::Tensor index_tensor(const std::vector<int64_t>& values, const at::Device& device) {
  return at::tensor(values, at::TensorOptions().dtype(at::kLong)).to(device);
}

UpdatePlan plan_update(const at::Tensor& labels, int64_t num_pids) {
  const at::Tensor cpu = labels.to(at::kCPU).contiguous();
  const int64_t* y = cpu.data_ptr<int64_t>();
  UpdatePlan plan;
  std::unordered_map<int64_t, size_t> seen;
  for (int64_t i = 0; i < cpu.numel(); ++i) {
    TORCH_CHECK(y[i] < num_pids, "OIM label ", y[i], " at row ", i, " is not below num_pids (",
                num_pids, ")");
    if (y[i] == kOimUnlabeled) plan.unlabeled.push_back(i);
    if (y[i] < 0) continue;
    const size_t round = seen[y[i]]++;
    if (round == plan.rounds.size()) plan.rounds.emplace_back();
    plan.rounds[round].samples.push_back(i);
    plan.rounds[round].ids.push_back(y[i]);
  }
  return plan;
}

/// lut[y] <- normalize(m * lut[y] + (1 - m) * x), round after round.
void update_lut(at::Tensor& lut, const at::Tensor& x, const std::vector<LutRound>& rounds,
                double m) {
  for (const LutRound& round : rounds) {
    const at::Tensor ids = index_tensor(round.ids, lut.device());
    const at::Tensor seen = x.index_select(0, index_tensor(round.samples, x.device()));
    at::Tensor moved = lut.index_select(0, ids) * m + seen * (1.0 - m);
    // clamp: a zero feature on a zero row would otherwise write NaN into the table.
    moved = moved / moved.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
    lut.index_copy_(0, ids, moved);
  }
}

/// Writes x[samples] into the queue from row `header` on, wrapping around. Writing them one
/// after the other leaves only the last min(count, size) of them; write just those, each
/// at the slot it would end in.
void push_queue(at::Tensor& cq, const at::Tensor& x, const std::vector<int64_t>& samples,
                int64_t header) {
  const int64_t size = cq.size(0);
  const auto pushed = static_cast<int64_t>(samples.size());
  const int64_t kept = std::min(pushed, size);
  std::vector<int64_t> slots(kept), rows(kept);
  for (int64_t j = 0; j < kept; ++j) {
    const int64_t k = pushed - kept + j;
    rows[j] = samples[k];
    slots[j] = (header + k) % size;
  }
  cq.index_copy_(0, index_tensor(slots, cq.device()),
                 x.index_select(0, index_tensor(rows, x.device())));
}

}  // namespace

OIMLossImpl::OIMLossImpl(const OIMLossOptions& options) : options_(options) {
  TORCH_CHECK(options.num_features() > 0 && options.num_pids() > 0 && options.num_cq_size() >= 0,
              "OIMLoss needs num_features > 0, num_pids > 0 and num_cq_size >= 0");
  // Zeros, as the official code: an identity contributes logit 0 until first seen.
  lut = register_buffer("lut", at::zeros({options.num_pids(), options.num_features()}));
  cq = register_buffer("cq", at::zeros({options.num_cq_size(), options.num_features()}));
  header_cq = register_buffer("header_cq", at::zeros({}, at::TensorOptions().dtype(at::kLong)));
}

at::Tensor OIMLossImpl::logits(const at::Tensor& features) const {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == options_.num_features(),
              "OIMLoss expects features [N, ", options_.num_features(), "], got ",
              features.sizes());
  // cat copies: autograd keeps this snapshot for the gradient, so the in-place memory
  // update that follows in forward() cannot change it (the gradient uses the table the
  // logits were computed with, as in the original OIM backward).
  const at::Tensor table = at::cat({lut, cq}).to(features.scalar_type());
  return features.mm(table.t()) * options_.oim_scalar();
}

at::Tensor OIMLossImpl::forward(const at::Tensor& features, const at::Tensor& labels) {
  check_labels(labels, features.size(0));
  plan_update(labels, options_.num_pids());  // validates the labels before anything is computed
  const at::Tensor loss = oim_cross_entropy(logits(features), labels);
  if (!is_training()) return loss;
  // In a data-parallel job every rank applies the whole job's batch, in rank order (the
  // order one process would see the global batch in), so the memories stay identical.
  // Background rows never touch the memory and are not sent.
  const at::Tensor persons = (labels >= kOimUnlabeled).nonzero().view({-1});
  const at::Tensor job_labels = distributed::all_gather_rows(labels.index_select(0, persons));
  const at::Tensor job_features = distributed::all_gather_rows(features.detach().index_select(0, persons));
  apply_update(job_features, plan_update(job_labels, options_.num_pids()));
  return loss;
}

void OIMLossImpl::update(const at::Tensor& features, const at::Tensor& labels) {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == options_.num_features(),
              "OIMLoss expects features [N, ", options_.num_features(), "], got ",
              features.sizes());
  check_labels(labels, features.size(0));
  apply_update(features, plan_update(labels, options_.num_pids()));
}

void OIMLossImpl::apply_update(const at::Tensor& features, const UpdatePlan& plan) {
  const at::Tensor x = features.detach().to(lut.device(), lut.scalar_type());
  update_lut(lut, x, plan.rounds, options_.oim_momentum());
  const int64_t size = cq.size(0);
  const auto pushed = static_cast<int64_t>(plan.unlabeled.size());
  if (size == 0 || pushed == 0) return;
  const int64_t header = queue_header();
  push_queue(cq, x, plan.unlabeled, header);
  header_cq.fill_((header + pushed) % size);
}

int64_t OIMLossImpl::queue_header() const {
  // item().toLong() rather than item<int64_t>() on purpose: Module::to(dtype) converts every
  // buffer, this integer one included.
  return header_cq.item().toLong();
}

at::Tensor oim_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2, "oim_cross_entropy expects logits [N, C], got ", logits.sizes());
  check_labels(labels, logits.size(0));
  const at::Tensor rows = at::nonzero(labels >= 0).squeeze(1);
  const at::Tensor target = labels.index_select(0, rows);
  if (rows.numel() > 0) {
    TORCH_CHECK(target.max().item().toLong() < logits.size(1), "oim_cross_entropy: label ",
                target.max().item().toLong(), " out of range for ", logits.size(1), " classes");
  }
  // With no labeled row the sum runs over an empty slice: exactly 0, and its backward
  // scatters nothing, so the gradient is exactly 0 too (no 0/0 as in a plain mean).
  const at::Tensor log_p = at::log_softmax(logits.index_select(0, rows), 1);
  const at::Tensor nll = -log_p.gather(1, target.unsqueeze(1)).sum();
  return nll / static_cast<double>(std::max<int64_t>(rows.numel(), 1));
}

}  // namespace psearch::modeling
