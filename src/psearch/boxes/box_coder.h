#pragma once
/// Box regression targets of Faster R-CNN / RetinaNet, with the semantics of
/// torchvision.models.detection._utils.BoxCoder.
///
/// A box (x1, y1, x2, y2) relative to a reference box ("proposal" or anchor) with width
/// w = x2 - x1, height h = y2 - y1 and centre (x1 + 0.5 w, y1 + 0.5 h) is coded as
///   dx = wx * (cx - cx_ref) / w_ref,   dy = wy * (cy - cy_ref) / h_ref,
///   dw = ww * log(w / w_ref),          dh = wh * log(h / h_ref).
/// Decoding inverts this, clamping dw / ww and dh / wh to bbox_xform_clip before exp().
#include <ATen/core/Tensor.h>

#include <array>
#include <cmath>
#include <vector>

namespace psearch::boxes {

class BoxCoder {
 public:
  /// weights: (wx, wy, ww, wh), e.g. (1, 1, 1, 1) for the RPN and (10, 10, 5, 5) for the
  /// Fast R-CNN box head. bbox_xform_clip: upper bound on dw / ww and dh / wh when
  /// decoding; the default log(1000 / 16) keeps exp() from overflowing on wild predictions.
  explicit BoxCoder(std::array<double, 4> weights,
                    double bbox_xform_clip = std::log(1000.0 / 16.0));

  const std::array<double, 4>& weights() const { return weights_; }
  double bbox_xform_clip() const { return bbox_xform_clip_; }

  // Method names follow torchvision: the *_single functions take one tensor of boxes,
  // encode/decode take per-image lists. Distinct names (rather than overloads) keep a
  // braced one-element list such as decode(codes, {boxes}) from silently binding to the
  // single-tensor version, whose output layout differs.

  /// Regression targets of `reference_boxes` (the matched ground truth) with respect to
  /// `proposals`. reference_boxes: [N, 4]; proposals: [N, 4]. Returns [N, 4]
  /// (dx, dy, dw, dh), dtype of reference_boxes promoted with that of proposals.
  at::Tensor encode_single(const at::Tensor& reference_boxes, const at::Tensor& proposals) const;

  /// Per-image encode_single: reference_boxes[i]: [N_i, 4], proposals[i]: [N_i, 4].
  /// Returns one [N_i, 4] tensor per image (views into one [sum_i N_i, 4] result).
  std::vector<at::Tensor> encode(const std::vector<at::Tensor>& reference_boxes,
                                 const std::vector<at::Tensor>& proposals) const;

  /// Applies regression codes to reference boxes.
  /// rel_codes: [N, 4 * K] (K boxes per reference box, e.g. one per class, laid out as
  /// (dx, dy, dw, dh) of class 0, then of class 1, ...); boxes: [N, 4], converted to the
  /// dtype of rel_codes. Returns [N, 4 * K] boxes (x1, y1, x2, y2) in the same layout.
  at::Tensor decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes) const;

  /// Decodes the codes of a batch against per-image reference boxes.
  /// rel_codes: any shape holding sum_i N_i * 4 * K elements in row order, e.g.
  /// [sum_i N_i, 4 * K] or [B, N, 4 * K]; boxes[i]: [N_i, 4]. Returns [sum_i N_i, K, 4].
  /// With no boxes at all, rel_codes must already be [0, 4 * K] and the result is
  /// [0, 4 * K] (not reshaped), as in torchvision.
  at::Tensor decode(const at::Tensor& rel_codes, const std::vector<at::Tensor>& boxes) const;

 private:
  std::array<double, 4> weights_;
  double bbox_xform_clip_;
};

}  // namespace psearch::boxes
