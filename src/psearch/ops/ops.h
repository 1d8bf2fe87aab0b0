#pragma once
/// C++ entry points of the detection ops registered in the `psearch::` dispatcher
/// namespace. Each call goes through the dispatcher, so CPU, CUDA and autograd
/// kernels are chosen from the inputs. Semantics match torchvision.ops.
#include <ATen/core/Tensor.h>

namespace psearch::ops {

/// Greedy non-maximum suppression.
/// dets: [N, 4] boxes (x1, y1, x2, y2); scores: [N].
/// Returns int64 [K] indices of kept boxes, sorted by decreasing score.
at::Tensor nms(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold);

/// NMS done independently per category: boxes of different `idxs` never suppress
/// each other. boxes: [N, 4]; scores: [N]; idxs: int64 [N].
/// Returns int64 [K] indices sorted by decreasing score.
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold);

/// RoIAlign (Mask R-CNN). input: [B, C, H, W]; rois: [K, 5] as (batch_index, x1, y1, x2, y2)
/// in image coordinates, mapped to the feature map by `spatial_scale`.
/// sampling_ratio <= 0 picks ceil(roi_size / pooled_size) samples per bin.
/// aligned = true shifts boxes by -0.5 pixel (pixel model of detectron2).
/// Returns [K, C, pooled_height, pooled_width]. Differentiable w.r.t. input.
at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                     int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                     bool aligned);

/// Deformable convolution v1/v2 (modulated when `mask` is given).
/// input: [B, Cin, H, W]; weight: [Cout, Cin / groups, kh, kw];
/// offset: [B, 2 * offset_groups * kh * kw, Hout, Wout];
/// mask: [B, offset_groups * kh * kw, Hout, Wout] or undefined; bias: [Cout] or undefined.
/// Returns [B, Cout, Hout, Wout]. Differentiable w.r.t. input, weight, offset, mask and bias.
at::Tensor deform_conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                         const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
                         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                         int64_t dilation_w, int64_t groups, int64_t offset_groups);

}  // namespace psearch::ops
