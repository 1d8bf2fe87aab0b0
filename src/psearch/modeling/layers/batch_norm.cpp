#include "psearch/modeling/layers/batch_norm.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "psearch/distributed/collectives.h"

namespace psearch::modeling {
namespace {

/// Every dimension but the channel one (1).
std::vector<int64_t> reduced_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

/// [C] -> broadcastable against x: [1, C, 1, ...].
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

/// y = (x - mean) * invstd * weight + bias with statistics computed over the whole job; the
/// backward pass sums its per-channel terms over the ranks, as torch.nn.SyncBatchNorm, so
/// each rank's input gradient is the gradient of the sum of all ranks' losses (the
/// gradient averaging of the parameters then divides by the world size).
struct SynchronizedNormalize : public torch::autograd::Function<SynchronizedNormalize> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& mean, const at::Tensor& invstd, double count) {
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["count"] = count;
    at::Tensor y = (x - per_channel(mean, x)) * per_channel(invstd, x);
    if (weight.defined()) y = y * per_channel(weight, x);
    if (bias.defined()) y = y + per_channel(bias, x);
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    const double count = ctx->saved_data["count"].toDouble();
    const at::Tensor gy = grads[0];
    const std::vector<int64_t> dims = reduced_dims(x);
    const at::Tensor xhat = (x - per_channel(mean, x)) * per_channel(invstd, x);
    // The sums cancel heavily (the layer after a BatchNorm often removes the mean of its
    // gradient), so on the CPU they are accumulated in double, as torch's own CPU kernel
    // does (acc_type<float> is double there; on CUDA it is float, here too).
    const auto acc = x.is_cuda() ? x.scalar_type() : at::kDouble;
    const at::Tensor gy_acc = gy.to(acc);
    const at::Tensor sum_dy = gy_acc.sum(dims);
    const at::Tensor sum_dy_xhat = (gy_acc * (x.to(acc) - per_channel(mean.to(acc), x))).sum(dims) * invstd.to(acc);
    // Parameter gradients stay this rank's own; input gradients need the job's sums.
    at::Tensor job_sums = at::cat({sum_dy, sum_dy_xhat});
    distributed::all_reduce_sum(job_sums);
    const int64_t c = sum_dy.size(0);
    const at::Tensor mean_dy = (job_sums.narrow(0, 0, c) / count).to(x.scalar_type());
    const at::Tensor mean_dy_xhat = (job_sums.narrow(0, c, c) / count).to(x.scalar_type());
    at::Tensor scale = weight.defined() ? invstd * weight : invstd;
    const at::Tensor gx =
        per_channel(scale, x) * (gy - per_channel(mean_dy, x) - xhat * per_channel(mean_dy_xhat, x));
    return {gx, weight.defined() ? sum_dy_xhat.to(weight.scalar_type()) : at::Tensor(), sum_dy.to(gy.scalar_type()),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor with_running_statistics(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& running_mean, const at::Tensor& running_var, double eps) {
  return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/false, 0.0, eps,
                        /*cudnn_enabled=*/true);
}

at::Tensor synchronized_batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& running_mean, const at::Tensor& running_var, double momentum,
                                   double eps) {
  const std::vector<int64_t> dims = reduced_dims(x);
  const int64_t c = x.size(1);
  // Sums and sums of squares in double: the job's variance is E[x^2] - E[x]^2.
  const at::Tensor xd = x.detach().to(at::kDouble);
  at::Tensor stats = at::cat({xd.sum(dims), (xd * xd).sum(dims),
                              at::scalar_tensor(static_cast<double>(x.numel() / c), xd.options()).view({1})});
  distributed::all_reduce_sum(stats);
  const double count = stats[2 * c].item<double>();
  if (count < 2) return with_running_statistics(x, weight, bias, running_mean, running_var, eps);
  const at::Tensor mean = stats.narrow(0, 0, c) / count;
  const at::Tensor var = (stats.narrow(0, c, c) / count - mean * mean).clamp_min(0);
  if (running_mean.defined()) {
    running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()) * momentum);
    running_var.mul_(1 - momentum).add_((var * (count / (count - 1))).to(running_var.scalar_type()) * momentum);
  }
  const at::Tensor invstd = (var + eps).rsqrt();
  return SynchronizedNormalize::apply(x, weight, bias, mean.to(x.scalar_type()), invstd.to(x.scalar_type()), count);
}

}  // namespace

at::Tensor batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      const at::Tensor& running_mean, const at::Tensor& running_var, bool training, double momentum,
                      double eps) {
  if (!training) return with_running_statistics(x, weight, bias, running_mean, running_var, eps);
  if (distributed::in_job()) return synchronized_batch_norm(x, weight, bias, running_mean, running_var, momentum, eps);
  if (x.numel() / x.size(1) < 2) return with_running_statistics(x, weight, bias, running_mean, running_var, eps);
  return at::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true, momentum, eps,
                        /*cudnn_enabled=*/true);
}

BatchNormImpl::BatchNormImpl(int64_t num_features, double eps, double momentum) : eps_(eps), momentum_(momentum) {
  weight = register_parameter("weight", at::ones({num_features}));
  bias = register_parameter("bias", at::zeros({num_features}));
  running_mean = register_buffer("running_mean", at::zeros({num_features}));
  running_var = register_buffer("running_var", at::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::TensorOptions().dtype(at::kLong)));
}

at::Tensor BatchNormImpl::forward(const at::Tensor& x) {
  if (is_training()) num_batches_tracked.add_(1);
  return batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_);
}

}  // namespace psearch::modeling
