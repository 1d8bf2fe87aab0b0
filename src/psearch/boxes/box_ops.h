#pragma once
/// Elementary box utilities on (x1, y1, x2, y2) boxes, with the semantics of the
/// torchvision.ops functions of the same names (torchvision 0.26), so that results
/// computed here and in torchvision agree bit for bit on the same inputs.
///
/// Boxes are "xyxy": x2 >= x1 and y2 >= y1 for a valid box; width is x2 - x1 (no +1,
/// unlike Detectron v1). Every function keeps the device of its inputs.
#include <ATen/core/Tensor.h>

#include <array>
#include <string_view>

namespace psearch::boxes {

/// Throws c10::Error unless `boxes` is a defined [N, 4] tensor. The message names the
/// caller (`where`), the argument (`name`) and the shape that was given, e.g.
/// "box_iou: boxes1 must have shape [N, 4], got [3, 5]".
void check_boxes_2d(const at::Tensor& boxes, std::string_view where, std::string_view name);

/// Throws c10::Error unless `boxes` is a defined [..., 4] tensor (at least 1-D, last
/// dimension 4). The message names the caller, the argument and the given shape.
void check_boxes_nd(const at::Tensor& boxes, std::string_view where, std::string_view name);

/// Area (x2 - x1) * (y2 - y1) of each box.
/// boxes: [..., 4]. Returns [...]. Like torchvision, float16/bfloat16 boxes are computed
/// and returned in float32 and small integer types in int32 (to avoid overflow);
/// float32/float64/int32/int64 keep their dtype.
at::Tensor box_area(const at::Tensor& boxes);

/// Pairwise intersection-over-union.
/// boxes1: [N, 4]; boxes2: [M, 4]. Returns [N, M] with iou[i, j] = IoU(boxes1[i], boxes2[j])
/// in float32/float64 (float32 for integer or half inputs, as torchvision).
/// Degenerate pairs (union 0) give NaN, as in torchvision.
at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2);

/// Clamps x coordinates to [0, width] and y coordinates to [0, height].
/// boxes: [..., 4]; image_size: (height, width). Returns [..., 4], same dtype.
at::Tensor clip_boxes_to_image(const at::Tensor& boxes, std::array<int64_t, 2> image_size);

/// Indices of the boxes whose width and height are both >= min_size.
/// boxes: [N, 4]. Returns int64 [K], increasing.
at::Tensor remove_small_boxes(const at::Tensor& boxes, double min_size);

/// The mask form of remove_small_boxes: bool [N], true where width and height are both
/// >= min_size (to be combined with other conditions before one nonzero, i.e. one wait
/// for the device).
at::Tensor large_enough_boxes(const at::Tensor& boxes, double min_size);

}  // namespace psearch::boxes
