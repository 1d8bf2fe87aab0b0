#pragma once
/// The re-identification side losses of PCNet (Sec. 3.1 and 3.2). Each takes the positives
/// of a batch (anchors assigned to a ground-truth person) and returns the sum over them of
/// the per-positive term; the caller divides by the number of positives (Eq. 14).
#include <ATen/core/Tensor.h>

namespace psearch::modeling {

/// Distance loss (Eq. 6), summed over positives. offsets: [N, 18] the CPP offsets
/// (dy, dx per 3x3 kernel tap, row-major) in cells of each positive's level; strides: [N]
/// that level's stride; heights: [N] h*, the height of the matched ground-truth box in
/// batch pixels. The 9 points are split by tap order into `sets` groups of floor(9 / M)
/// taps (the last takes the rest: with M = 3, the three kernel rows); m_i is the mean
/// vertical position of group i's sampling points, (kernel row - 1 + dy) * stride relative
/// to the cell; S = (1 / h*) sum_{i=1}^{M-1} ((m_{i+1} - m_i) - h* / M)^2.
at::Tensor distance_loss_sum(const at::Tensor& offsets, const at::Tensor& strides, const at::Tensor& heights,
                             int64_t sets);

/// The triplet variant of Eq. 11, summed over anchors that have a negative in the batch.
/// csa: [N, D] L2-normalised CSA features f; point: [N, D] L2-normalised point features f'
/// of the same positives; pids: int64 [N] (-1 unlabeled: all unlabeled persons count as
/// one identity, as in the official code).
///   paper:    max(margin + |f_k - f'_k|^2 - min_{j: pid_j != pid_k} |f_k - f'_j|^2, 0)
///   official: max(margin + max_{j: pid_j != pid_k} <f_k, f_j> - <f_k, f'_k>, 0)
/// Returns the sum and, in `count`, the number of anchors it covers.
at::Tensor triplet_loss_sum(const at::Tensor& csa, const at::Tensor& point, const at::Tensor& pids, double margin,
                            bool official, int64_t* count = nullptr);

}  // namespace psearch::modeling
