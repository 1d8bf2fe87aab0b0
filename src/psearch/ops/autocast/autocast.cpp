// Autocast (mixed precision) for psearch's ops, as torchvision registers them for its own:
// under torch.autocast / at::autocast the ops run in float32 (their inputs are cast, once,
// through autocast's cast cache) and return the autocast dtype where the output is
// features, so the layers that follow stay in bfloat16 / float16. RoIAlign and
// deformable convolution sample bilinearly at fractional positions; in bfloat16 a
// coordinate of 900 pixels has a resolution of 4 pixels, so they are kept in float32.
// NMS compares boxes and scores: float32 as well; its output is indices.
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include "psearch/ops/ops.h"

namespace psearch::ops {
namespace {

template <c10::DispatchKey Key, c10::DeviceType Device>
struct Autocast {
  static at::Tensor to_float(const at::Tensor& t) { return at::autocast::cached_cast(at::kFloat, t, Device); }

  static at::Tensor nms(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(Key);
    return ops::nms(to_float(dets), to_float(scores), iou_threshold);
  }

  static at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                              int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(Key);
    return ops::roi_align(to_float(input), to_float(rois), spatial_scale, pooled_height, pooled_width,
                          sampling_ratio, aligned)
        .to(input.scalar_type());
  }

  static at::Tensor deform_conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                                  const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                  int64_t pad_h, int64_t pad_w, int64_t dilation_h, int64_t dilation_w,
                                  int64_t groups, int64_t offset_groups, bool use_mask) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(Key);
    // The output takes the autocast dtype (what a convolution under autocast returns).
    const at::ScalarType out = at::autocast::get_autocast_dtype(Device);
    return ops::deform_conv2d(to_float(input), to_float(weight), to_float(offset),
                              use_mask ? to_float(mask) : at::Tensor(), to_float(bias), stride_h, stride_w, pad_h,
                              pad_w, dilation_h, dilation_w, groups, offset_groups)
        .to(out);
  }

  static void register_ops(torch::Library& m) {
    m.impl("nms", &nms);
    m.impl("roi_align", &roi_align);
    m.impl("deform_conv2d", &deform_conv2d);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(psearch, AutocastCPU, m) { Autocast<c10::DispatchKey::AutocastCPU, c10::kCPU>::register_ops(m); }
TORCH_LIBRARY_IMPL(psearch, AutocastCUDA, m) { Autocast<c10::DispatchKey::AutocastCUDA, c10::kCUDA>::register_ops(m); }

}  // namespace psearch::ops
