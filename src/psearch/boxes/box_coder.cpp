#include "psearch/boxes/box_coder.h"

#include "psearch/boxes/box_ops.h"
#include "psearch/util/traceable.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <optional>

namespace psearch::boxes {

BoxCoder::BoxCoder(std::array<double, 4> weights, double bbox_xform_clip)
    : weights_(weights), bbox_xform_clip_(bbox_xform_clip) {
  for (double w : weights_) {
    // Decoding divides by the weights; a zero or negative weight is a configuration error.
    TORCH_CHECK(w > 0, "BoxCoder: weights (wx, wy, ww, wh) must be positive, got (", weights_[0],
                ", ", weights_[1], ", ", weights_[2], ", ", weights_[3], ")");
  }
}

at::Tensor BoxCoder::encode_single(const at::Tensor& reference_boxes,
                                   const at::Tensor& proposals) const {
  check_boxes_2d(reference_boxes, "BoxCoder::encode_single", "reference_boxes");
  check_boxes_2d(proposals, "BoxCoder::encode_single", "proposals");
  TORCH_CHECK(reference_boxes.size(0) == proposals.size(0),
              "BoxCoder::encode_single: reference_boxes and proposals need the same number of "
              "boxes, got ", reference_boxes.sizes(), " and ", proposals.sizes());

  // torchvision turns the weights into 0-d tensors of the reference dtype (not Python
  // floats); doing the same rounds them identically when the dtypes differ.
  const auto w = [&](int i) { return at::scalar_tensor(weights_[i], reference_boxes.options()); };

  const at::Tensor ex_w = proposals.select(1, 2).sub(proposals.select(1, 0));
  const at::Tensor ex_h = proposals.select(1, 3).sub(proposals.select(1, 1));
  const at::Tensor ex_cx = proposals.select(1, 0).add(ex_w.mul(0.5));
  const at::Tensor ex_cy = proposals.select(1, 1).add(ex_h.mul(0.5));

  const at::Tensor gt_w = reference_boxes.select(1, 2).sub(reference_boxes.select(1, 0));
  const at::Tensor gt_h = reference_boxes.select(1, 3).sub(reference_boxes.select(1, 1));
  const at::Tensor gt_cx = reference_boxes.select(1, 0).add(gt_w.mul(0.5));
  const at::Tensor gt_cy = reference_boxes.select(1, 1).add(gt_h.mul(0.5));

  // Operation order (weight * difference, then / size) follows torchvision so float
  // rounding, and hence the targets, agree exactly.
  const at::Tensor dx = w(0).mul(gt_cx.sub(ex_cx)).div(ex_w);
  const at::Tensor dy = w(1).mul(gt_cy.sub(ex_cy)).div(ex_h);
  const at::Tensor dw = w(2).mul(gt_w.div(ex_w).log());
  const at::Tensor dh = w(3).mul(gt_h.div(ex_h).log());
  return at::stack({dx, dy, dw, dh}, 1);
}

std::vector<at::Tensor> BoxCoder::encode(const std::vector<at::Tensor>& reference_boxes,
                                         const std::vector<at::Tensor>& proposals) const {
  TORCH_CHECK(!reference_boxes.empty(), "BoxCoder::encode: got an empty list of images");
  TORCH_CHECK(reference_boxes.size() == proposals.size(),
              "BoxCoder::encode: got ", reference_boxes.size(), " images of reference boxes but ",
              proposals.size(), " of proposals");
  std::vector<int64_t> boxes_per_image;
  boxes_per_image.reserve(reference_boxes.size());
  for (const auto& b : reference_boxes) {
    check_boxes_2d(b, "BoxCoder::encode", "reference_boxes[i]");
    boxes_per_image.push_back(b.size(0));
  }
  // One encode over the whole batch instead of a loop: fewer, larger kernels.
  const at::Tensor targets = encode_single(at::cat(reference_boxes, 0), at::cat(proposals, 0));
  return targets.split_with_sizes(boxes_per_image, 0);
}

at::Tensor BoxCoder::decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes_in) const {
  check_boxes_2d(boxes_in, "BoxCoder::decode_single", "boxes");
  TORCH_CHECK(rel_codes.defined() && rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0,
              "BoxCoder::decode_single: rel_codes must have shape [N, 4 * K], got ",
              rel_codes.defined() ? rel_codes.sizes() : at::IntArrayRef{});
  // Checked because broadcasting would otherwise silently apply [1, 4K] codes to all boxes.
  TORCH_CHECK(rel_codes.size(0) == boxes_in.size(0),
              "BoxCoder::decode_single: rel_codes ", rel_codes.sizes(), " and boxes ",
              boxes_in.sizes(), " must have the same number of rows");

  // At least the boxes' precision: under autocast the codes come in bfloat16, whose 8-bit
  // mantissa cannot hold image coordinates (torchvision decodes in the boxes' dtype too).
  const at::ScalarType dtype = c10::promoteTypes(rel_codes.scalar_type(), boxes_in.scalar_type());
  const at::Tensor boxes = boxes_in.to(dtype);
  const at::Tensor codes = rel_codes.to(dtype);
  const at::Tensor widths = boxes.select(1, 2).sub(boxes.select(1, 0)).unsqueeze(1);   // [N, 1]
  const at::Tensor heights = boxes.select(1, 3).sub(boxes.select(1, 1)).unsqueeze(1);  // [N, 1]
  const at::Tensor ctr_x = boxes.select(1, 0).unsqueeze(1).add(widths.mul(0.5));
  const at::Tensor ctr_y = boxes.select(1, 1).unsqueeze(1).add(heights.mul(0.5));

  const int64_t end = codes.size(1);
  const at::Tensor dx = codes.slice(1, 0, end, 4).div(weights_[0]);  // [N, K]
  const at::Tensor dy = codes.slice(1, 1, end, 4).div(weights_[1]);
  // Clamped before exp(): an untrained head can predict huge dw/dh, and exp() would give
  // inf boxes that poison NMS and the losses.
  const at::Tensor dw = codes.slice(1, 2, end, 4).div(weights_[2]).clamp(std::nullopt, bbox_xform_clip_);
  const at::Tensor dh = codes.slice(1, 3, end, 4).div(weights_[3]).clamp(std::nullopt, bbox_xform_clip_);

  const at::Tensor pred_ctr_x = dx.mul(widths).add(ctr_x);
  const at::Tensor pred_ctr_y = dy.mul(heights).add(ctr_y);
  const at::Tensor half_w = dw.exp().mul(widths).mul(0.5);
  const at::Tensor half_h = dh.exp().mul(heights).mul(0.5);

  // [N, K, 4] -> [N, 4K]: box k of row n occupies columns 4k .. 4k + 3.
  return at::stack({pred_ctr_x.sub(half_w), pred_ctr_y.sub(half_h), pred_ctr_x.add(half_w),
                    pred_ctr_y.add(half_h)},
                   2)
      .flatten(1);
}

at::Tensor BoxCoder::decode(const at::Tensor& rel_codes, const std::vector<at::Tensor>& boxes) const {
  TORCH_CHECK(!boxes.empty(), "BoxCoder::decode: got an empty list of images");
  TORCH_CHECK(rel_codes.defined(), "BoxCoder::decode: rel_codes is an undefined tensor");
  int64_t box_sum = 0;
  for (const auto& b : boxes) {
    check_boxes_2d(b, "BoxCoder::decode", "boxes[i]");
    box_sum += b.size(0);
  }
  at::Tensor codes = rel_codes;
  if (box_sum > 0) {
    TORCH_CHECK(rel_codes.numel() % (4 * box_sum) == 0, "BoxCoder::decode: rel_codes ",
                rel_codes.sizes(), " does not hold 4 * K codes for each of the ", box_sum,
                " boxes");
    // Rows by -1 and columns by value: the box count may change under tracing, the
    // number of codes per box does not.
    codes = rel_codes.reshape({-1, rel_codes.numel() / box_sum});
  }
  at::Tensor pred = decode_single(codes, at::cat(boxes, 0));
  if (box_sum > 0) {
    pred = pred.reshape({-1, codes.size(1) / 4, 4});
  }
  return pred;
}

}  // namespace psearch::boxes
