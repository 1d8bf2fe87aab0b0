// Autograd kernels of psearch::roi_align and psearch::_roi_align_backward.
//
// RoIAlign is linear in its input: out = A(rois) * input. Its backward is therefore the
// adjoint, grad_input = A^T * grad (psearch::_roi_align_backward), and the backward of
// that is A again, i.e. roi_align itself. So both ops are differentiable any number of
// times w.r.t. the feature map; RoI coordinates get no gradient (as in torchvision).
// Both kernels re-enter the dispatcher below the autograd keys, so they work for every
// backend that has the forward and backward kernels.
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "psearch/ops/ops.h"

namespace psearch::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor roi_align_backward_op(const at::Tensor& grad, const at::Tensor& rois,
                                 double spatial_scale, int64_t pooled_height,
                                 int64_t pooled_width, int64_t batch_size, int64_t channels,
                                 int64_t height, int64_t width, int64_t sampling_ratio,
                                 bool aligned) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("psearch::_roi_align_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t, int64_t,
                            int64_t, int64_t, int64_t, int64_t, int64_t, bool)>();
  return op.call(grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels,
                 height, width, sampling_ratio, aligned);
}

/// Stores the pooling parameters shared by both functions in the autograd context.
void save_params(AutogradContext* ctx, double spatial_scale, int64_t pooled_height,
                 int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
  ctx->saved_data["spatial_scale"] = spatial_scale;
  ctx->saved_data["pooled_height"] = pooled_height;
  ctx->saved_data["pooled_width"] = pooled_width;
  ctx->saved_data["sampling_ratio"] = sampling_ratio;
  ctx->saved_data["aligned"] = aligned;
}

/// Gradients for the 7 forward arguments: only the first one is a differentiable tensor.
variable_list only_first(const at::Tensor& grad) {
  return {grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
          at::Tensor()};
}

class RoiAlignFunction : public torch::autograd::Function<RoiAlignFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& rois,
                            double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                            int64_t sampling_ratio, bool aligned) {
    ctx->save_for_backward({rois});
    save_params(ctx, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    ctx->saved_data["input_shape"] = input.sizes();
    // Skip the autograd keys, or the call would come straight back to this kernel.
    at::AutoDispatchBelowADInplaceOrView guard;
    return roi_align(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio,
                     aligned);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor rois = ctx->get_saved_variables()[0];
    const auto shape = ctx->saved_data["input_shape"].toIntVector();
    auto& d = ctx->saved_data;
    // Dispatched with autograd on, so create_graph=True builds a differentiable graph.
    return only_first(roi_align_backward_op(
        grad_outputs[0], rois, d["spatial_scale"].toDouble(), d["pooled_height"].toInt(),
        d["pooled_width"].toInt(), shape[0], shape[1], shape[2], shape[3],
        d["sampling_ratio"].toInt(), d["aligned"].toBool()));
  }
};

class RoiAlignBackwardFunction : public torch::autograd::Function<RoiAlignBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad, const at::Tensor& rois,
                            double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                            int64_t batch_size, int64_t channels, int64_t height, int64_t width,
                            int64_t sampling_ratio, bool aligned) {
    ctx->save_for_backward({rois});
    save_params(ctx, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
    at::AutoDispatchBelowADInplaceOrView guard;
    return roi_align_backward_op(grad, rois, spatial_scale, pooled_height, pooled_width,
                                 batch_size, channels, height, width, sampling_ratio, aligned);
  }

  /// The adjoint of the adjoint: pooling the incoming gradient with roi_align.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor rois = ctx->get_saved_variables()[0];
    auto& d = ctx->saved_data;
    const at::Tensor grad_grad = roi_align(
        grad_outputs[0], rois, d["spatial_scale"].toDouble(), d["pooled_height"].toInt(),
        d["pooled_width"].toInt(), d["sampling_ratio"].toInt(), d["aligned"].toBool());
    // 11 arguments; only `grad` is differentiable.
    variable_list grads(11);
    grads[0] = grad_grad;
    return grads;
  }
};

at::Tensor roi_align_autograd(const at::Tensor& input, const at::Tensor& rois,
                              double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                              int64_t sampling_ratio, bool aligned) {
  return RoiAlignFunction::apply(input, rois, spatial_scale, pooled_height, pooled_width,
                                 sampling_ratio, aligned);
}

at::Tensor roi_align_backward_autograd(const at::Tensor& grad, const at::Tensor& rois,
                                       double spatial_scale, int64_t pooled_height,
                                       int64_t pooled_width, int64_t batch_size,
                                       int64_t channels, int64_t height, int64_t width,
                                       int64_t sampling_ratio, bool aligned) {
  return RoiAlignBackwardFunction::apply(grad, rois, spatial_scale, pooled_height, pooled_width,
                                         batch_size, channels, height, width, sampling_ratio,
                                         aligned);
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, Autograd, m) {
  m.impl("roi_align", &roi_align_autograd);
  m.impl("_roi_align_backward", &roi_align_backward_autograd);
}

}  // namespace psearch::ops
