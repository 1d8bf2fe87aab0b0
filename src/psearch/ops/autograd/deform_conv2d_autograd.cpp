// Autograd kernels of psearch::deform_conv2d: the forward redispatches below the
// autograd key (to the CPU or CUDA kernel), the backward calls
// psearch::_deform_conv2d_backward through the dispatcher so it also runs on whatever
// backend holds the tensors.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

namespace psearch::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                              int64_t, int64_t, int64_t, int64_t, int64_t, bool);
using BackwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
    int64_t, int64_t, bool);

const c10::TypedOperatorHandle<ForwardSig>& forward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("psearch::deform_conv2d", "")
                             .typed<ForwardSig>();
  return op;
}

const c10::TypedOperatorHandle<BackwardSig>& backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("psearch::_deform_conv2d_backward", "")
                             .typed<BackwardSig>();
  return op;
}

class DeformConv2dFunction : public torch::autograd::Function<DeformConv2dFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                          const Variable& offset, const Variable& mask, const Variable& bias,
                          int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                          int64_t dilation_h, int64_t dilation_w, int64_t groups,
                          int64_t offset_groups, bool use_mask) {
    // Below the autograd key the call reaches the backend kernel instead of this one.
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor output =
        forward_op().call(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                          dilation_h, dilation_w, groups, offset_groups, use_mask);
    // Every gradient needs the inputs (the sampling positions depend on offset, the
    // modulation on mask), so all five are saved.
    ctx->save_for_backward({input, weight, offset, mask, bias});
    ctx->saved_data["stride_h"] = stride_h;
    ctx->saved_data["stride_w"] = stride_w;
    ctx->saved_data["pad_h"] = pad_h;
    ctx->saved_data["pad_w"] = pad_w;
    ctx->saved_data["dilation_h"] = dilation_h;
    ctx->saved_data["dilation_w"] = dilation_w;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["offset_groups"] = offset_groups;
    ctx->saved_data["use_mask"] = use_mask;
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const auto& d = ctx->saved_data;
    auto [grad_input, grad_weight, grad_offset, grad_mask, grad_bias] = backward_op().call(
        grad_outputs[0], saved[0], saved[1], saved[2], saved[3], saved[4],
        d.at("stride_h").toInt(), d.at("stride_w").toInt(), d.at("pad_h").toInt(),
        d.at("pad_w").toInt(), d.at("dilation_h").toInt(), d.at("dilation_w").toInt(),
        d.at("groups").toInt(), d.at("offset_groups").toInt(), d.at("use_mask").toBool());
    // One entry per forward argument; the nine non-tensor arguments get none.
    return {grad_input, grad_weight, grad_offset, grad_mask, grad_bias,
            Variable(), Variable(),  Variable(),  Variable(), Variable(),
            Variable(), Variable(),  Variable(),  Variable()};
  }
};

// The backward op is not itself differentiable. Registering it under Autograd with a
// Function whose backward fails turns a silent wrong double-backward into a clear error.
class DeformConv2dBackwardFunction
    : public torch::autograd::Function<DeformConv2dBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* /*ctx*/, const Variable& grad,
                               const Variable& input, const Variable& weight,
                               const Variable& offset, const Variable& mask,
                               const Variable& bias, int64_t stride_h, int64_t stride_w,
                               int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                               int64_t dilation_w, int64_t groups, int64_t offset_groups,
                               bool use_mask) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [gi, gw, go, gm, gb] =
        backward_op().call(grad, input, weight, offset, mask, bias, stride_h, stride_w, pad_h,
                           pad_w, dilation_h, dilation_w, groups, offset_groups, use_mask);
    return {gi, gw, go, gm, gb};
  }

  static variable_list backward(AutogradContext* /*ctx*/, variable_list /*grad_outputs*/) {
    TORCH_CHECK(false, "psearch::deform_conv2d: double backward is not supported");
  }
};

at::Tensor deform_conv2d_autograd(const at::Tensor& input, const at::Tensor& weight,
                                  const at::Tensor& offset, const at::Tensor& mask,
                                  const at::Tensor& bias, int64_t stride_h, int64_t stride_w,
                                  int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                  int64_t dilation_w, int64_t groups, int64_t offset_groups,
                                  bool use_mask) {
  return DeformConv2dFunction::apply(input, weight, offset, mask, bias, stride_h, stride_w,
                                     pad_h, pad_w, dilation_h, dilation_w, groups,
                                     offset_groups, use_mask);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
deform_conv2d_backward_autograd(const at::Tensor& grad, const at::Tensor& input,
                                const at::Tensor& weight, const at::Tensor& offset,
                                const at::Tensor& mask, const at::Tensor& bias, int64_t stride_h,
                                int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                int64_t dilation_h, int64_t dilation_w, int64_t groups,
                                int64_t offset_groups, bool use_mask) {
  const variable_list r = DeformConv2dBackwardFunction::apply(
      grad, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dilation_h,
      dilation_w, groups, offset_groups, use_mask);
  return {r[0], r[1], r[2], r[3], r[4]};
}

}  // namespace

TORCH_LIBRARY_IMPL(psearch, Autograd, m) {
  m.impl("deform_conv2d", TORCH_FN(deform_conv2d_autograd));
  m.impl("_deform_conv2d_backward", TORCH_FN(deform_conv2d_backward_autograd));
}

}  // namespace psearch::ops
