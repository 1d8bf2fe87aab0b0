#pragma once
/// Sampling of a fixed-size, class-balanced minibatch of anchors or proposals per image,
/// with the semantics of torchvision.models.detection._utils.BalancedPositiveNegativeSampler.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <optional>
#include <utility>
#include <vector>

namespace psearch::boxes {

class BalancedPositiveNegativeSampler {
 public:
  /// batch_size_per_image: number of elements to keep per image (e.g. 256 for the RPN,
  /// 512 for the box head); positive_fraction: wanted share of positives (e.g. 0.5, 0.25).
  BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction);

  int64_t batch_size_per_image() const { return batch_size_per_image_; }
  double positive_fraction() const { return positive_fraction_; }

  /// matched_idxs[i]: [N_i] labels of image i, any real dtype: >= 1 positive, 0 negative,
  /// anything else (e.g. -1 ignore, -2 between thresholds) never sampled.
  /// Per image, num_pos = min(int(batch_size_per_image * positive_fraction), #positives)
  /// positives and num_neg = min(batch_size_per_image - num_pos, #negatives) negatives are
  /// drawn uniformly without replacement with randperm on the labels' device: first a
  /// permutation of the positives, then one of the negatives, image after image. With the
  /// default generator (gen = nullopt) this is the same random stream as torchvision, so
  /// after the same at::manual_seed the picks are identical.
  /// Returns (pos_masks, neg_masks): uint8 [N_i] tensors per image, 1 where sampled.
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> operator()(
      const std::vector<at::Tensor>& matched_idxs,
      std::optional<at::Generator> gen = std::nullopt) const;

 private:
  int64_t batch_size_per_image_;
  double positive_fraction_;
};

}  // namespace psearch::boxes
