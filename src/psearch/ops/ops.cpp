#include "psearch/ops/ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/zeros.h>

namespace psearch::ops {
namespace {

// Looks the schema up once per op; the handle is then reused on every call.
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace

at::Tensor nms(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  static auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double)>("psearch::nms");
  return op.call(dets, scores, iou_threshold);
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  static auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      double)>("psearch::batched_nms");
  return op.call(boxes, scores, idxs, iou_threshold);
}

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                     int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                     bool aligned) {
  static auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t,
                                      int64_t, int64_t, bool)>("psearch::roi_align");
  return op.call(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
}

at::Tensor deform_conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                         const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
                         int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                         int64_t dilation_w, int64_t groups, int64_t offset_groups) {
  static auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                      const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool)>(
      "psearch::deform_conv2d");
  const bool use_mask = mask.defined();
  // The schema takes plain tensors; absent mask/bias become empty/zero tensors.
  const at::Tensor mask_arg = use_mask ? mask : at::zeros({0}, input.options());
  const at::Tensor bias_arg = bias.defined() ? bias : at::zeros({weight.size(0)}, input.options());
  return op.call(input, weight, offset, mask_arg, bias_arg, stride_h, stride_w, pad_h, pad_w,
                 dilation_h, dilation_w, groups, offset_groups, use_mask);
}

}  // namespace psearch::ops
