#include "psearch/boxes/sampler.h"

#include <ATen/ops/randperm.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace psearch::boxes {

BalancedPositiveNegativeSampler::BalancedPositiveNegativeSampler(int64_t batch_size_per_image,
                                                                 double positive_fraction)
    : batch_size_per_image_(batch_size_per_image), positive_fraction_(positive_fraction) {
  TORCH_CHECK(batch_size_per_image >= 0,
              "BalancedPositiveNegativeSampler: batch_size_per_image must be >= 0, got ",
              batch_size_per_image);
  TORCH_CHECK(positive_fraction >= 0.0 && positive_fraction <= 1.0,
              "BalancedPositiveNegativeSampler: positive_fraction must be in [0, 1], got ",
              positive_fraction);
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> BalancedPositiveNegativeSampler::operator()(
    const std::vector<at::Tensor>& matched_idxs, std::optional<at::Generator> gen) const {
  std::vector<at::Tensor> pos_masks;
  std::vector<at::Tensor> neg_masks;
  pos_masks.reserve(matched_idxs.size());
  neg_masks.reserve(matched_idxs.size());
  for (size_t i = 0; i < matched_idxs.size(); ++i) {
    const at::Tensor& labels = matched_idxs[i];
    TORCH_CHECK(labels.defined() && labels.dim() == 1,
                "BalancedPositiveNegativeSampler: matched_idxs[", i, "] must have shape [N], got ",
                labels.defined() ? labels.sizes() : at::IntArrayRef{});
    const at::Tensor positive = labels.ge(1).nonzero().select(1, 0);
    const at::Tensor negative = labels.eq(0).nonzero().select(1, 0);

    // Truncation, as Python's int(): 256 * 0.5 -> 128, 512 * 0.25 -> 128.
    const auto wanted_pos =
        static_cast<int64_t>(static_cast<double>(batch_size_per_image_) * positive_fraction_);
    const int64_t num_pos = std::min(positive.numel(), wanted_pos);
    // Missing positives are made up with negatives, so the batch stays full if it can.
    const int64_t num_neg = std::min(negative.numel(), batch_size_per_image_ - num_pos);

    // Both permutations are drawn even when empty or not needed: each randperm call is part
    // of the random stream, and keeping torchvision's call sequence keeps the picks equal.
    const auto idx_opts = at::TensorOptions().dtype(at::kLong).device(labels.device());
    const at::Tensor perm_pos = at::randperm(positive.numel(), gen, idx_opts).slice(0, 0, num_pos);
    const at::Tensor perm_neg = at::randperm(negative.numel(), gen, idx_opts).slice(0, 0, num_neg);

    at::Tensor pos_mask = at::zeros_like(labels, labels.options().dtype(at::kByte));
    at::Tensor neg_mask = at::zeros_like(labels, labels.options().dtype(at::kByte));
    pos_mask.index_fill_(0, positive.index_select(0, perm_pos), 1);
    neg_mask.index_fill_(0, negative.index_select(0, perm_neg), 1);
    pos_masks.push_back(std::move(pos_mask));
    neg_masks.push_back(std::move(neg_mask));
  }
  return {std::move(pos_masks), std::move(neg_masks)};
}

}  // namespace psearch::boxes
