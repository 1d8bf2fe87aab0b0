#include "psearch/boxes/box_ops.h"

#include <ATen/ops/maximum.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

namespace psearch::boxes {
namespace {

// torchvision's _upcast: products of coordinates overflow in half precision and in
// small integer types, so those are widened before multiplying.
at::Tensor upcast(const at::Tensor& t) {
  if (at::isFloatingType(t.scalar_type())) {
    const auto st = t.scalar_type();
    return (st == at::kFloat || st == at::kDouble) ? t : t.to(at::kFloat);
  }
  const auto st = t.scalar_type();
  return (st == at::kInt || st == at::kLong) ? t : t.to(at::kInt);
}

}  // namespace

void check_boxes_2d(const at::Tensor& boxes, std::string_view where, std::string_view name) {
  TORCH_CHECK(boxes.defined(), where, ": ", name, " is an undefined tensor; expected [N, 4] boxes");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, where, ": ", name,
              " must have shape [N, 4] (x1, y1, x2, y2), got ", boxes.sizes());
}

void check_boxes_nd(const at::Tensor& boxes, std::string_view where, std::string_view name) {
  TORCH_CHECK(boxes.defined(), where, ": ", name,
              " is an undefined tensor; expected [..., 4] boxes");
  TORCH_CHECK(boxes.dim() >= 1 && boxes.size(-1) == 4, where, ": ", name,
              " must have shape [..., 4] (x1, y1, x2, y2), got ", boxes.sizes());
}

at::Tensor box_area(const at::Tensor& boxes) {
  check_boxes_nd(boxes, "box_area", "boxes");
  const at::Tensor b = upcast(boxes);
  return b.select(-1, 2).sub(b.select(-1, 0)).mul(b.select(-1, 3).sub(b.select(-1, 1)));
}

at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes_2d(boxes1, "box_iou", "boxes1");
  check_boxes_2d(boxes2, "box_iou", "boxes2");
  const at::Tensor area1 = box_area(boxes1);  // [N]
  const at::Tensor area2 = box_area(boxes2);  // [M]
  // Corners of the intersection rectangle, broadcast to [N, M, 2].
  const at::Tensor lt = at::maximum(boxes1.slice(1, 0, 2).unsqueeze(1), boxes2.slice(1, 0, 2).unsqueeze(0));
  const at::Tensor rb = at::minimum(boxes1.slice(1, 2, 4).unsqueeze(1), boxes2.slice(1, 2, 4).unsqueeze(0));
  // Disjoint boxes have a negative extent: clamp it so their intersection is 0.
  const at::Tensor wh = upcast(rb.sub(lt)).clamp_min(0);
  const at::Tensor inter = wh.select(2, 0).mul(wh.select(2, 1));  // [N, M]
  // Same operation order as torchvision (a1 + a2 - inter), so float results match exactly.
  const at::Tensor uni = area1.unsqueeze(1).add(area2.unsqueeze(0)).sub(inter);
  return inter.div(uni);
}

at::Tensor clip_boxes_to_image(const at::Tensor& boxes, std::array<int64_t, 2> image_size) {
  check_boxes_nd(boxes, "clip_boxes_to_image", "boxes");
  const auto [height, width] = image_size;
  TORCH_CHECK(height >= 0 && width >= 0,
              "clip_boxes_to_image: image_size (height, width) must be non-negative, got (", height,
              ", ", width, ")");
  // Coordinate by coordinate and stacked back: no reshape, so that a traced graph (psearch
  // export) follows any box count, and its ONNX form works on zero boxes too.
  const at::Tensor x1 = boxes.select(-1, 0).clamp(0, width), y1 = boxes.select(-1, 1).clamp(0, height);
  const at::Tensor x2 = boxes.select(-1, 2).clamp(0, width), y2 = boxes.select(-1, 3).clamp(0, height);
  return at::stack({x1, y1, x2, y2}, -1);
}

at::Tensor large_enough_boxes(const at::Tensor& boxes, double min_size) {
  check_boxes_2d(boxes, "large_enough_boxes", "boxes");
  const at::Tensor ws = boxes.select(1, 2).sub(boxes.select(1, 0));
  const at::Tensor hs = boxes.select(1, 3).sub(boxes.select(1, 1));
  return ws.ge(min_size).logical_and(hs.ge(min_size));
}

at::Tensor remove_small_boxes(const at::Tensor& boxes, double min_size) {
  check_boxes_2d(boxes, "remove_small_boxes", "boxes");
  return large_enough_boxes(boxes, min_size).nonzero().select(1, 0);
}

}  // namespace psearch::boxes
