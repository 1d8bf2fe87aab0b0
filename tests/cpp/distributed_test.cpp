// The model-side collectives of a data-parallel job (distributed/collectives.h) with two
// ranks simulated by two threads of this process, so the arithmetic is checked exactly
// (in double) against one process that sees the whole batch: synchronized BatchNorm
// (forward, running statistics, input and parameter gradients) and the OIM memory update.
// tests/python/test_distributed.py runs real two-process Gloo jobs.
#include <ATen/TensorOperators.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "psearch/distributed/collectives.h"
#include "psearch/modeling/layers/batch_norm.h"
#include "psearch/modeling/layers/normalize.h"
#include "psearch/modeling/losses/oim_loss.h"

namespace psearch {
namespace {

thread_local int t_rank = 0;

/// Two ranks as two threads: each collective waits until both have contributed.
class ThreadRanks : public distributed::ModelCollectives {
 public:
  at::Tensor all_gather_rows(const at::Tensor& rows) override {
    std::vector<at::Tensor> parts = exchange(rows.detach().clone());
    return at::cat(parts);
  }
  void all_reduce_sum(at::Tensor& values) override {
    std::vector<at::Tensor> parts = exchange(values.detach().clone());
    values.copy_(parts[0] + parts[1]);
  }

 private:
  std::vector<at::Tensor> exchange(at::Tensor mine) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = round_;
    slots_[t_rank] = std::move(mine);
    if (++arrived_ == 2) {
      result_ = {slots_[0], slots_[1]};
      arrived_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return round_ != round; });
    }
    return result_;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  at::Tensor slots_[2];
  std::vector<at::Tensor> result_;
  int arrived_ = 0;
  int64_t round_ = 0;
};

/// Runs fn(0) and fn(1) on two threads with ThreadRanks installed.
void run_two_ranks(const std::function<void(int)>& fn) {
  ThreadRanks ranks;
  distributed::ScopedModelCollectives job(&ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      t_rank = r;
      fn(r);
    });
  for (auto& t : threads) t.join();
}

TEST(SynchronizedBatchNorm, TwoRanksEqualOneProcessWithTheWholeBatch) {
  at::manual_seed(3);
  const auto d = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor x = at::randn({5, 3, 4, 2}, d) * 2 + 1;  // rank 0: rows 0-1, rank 1: rows 2-4
  const at::Tensor upstream = at::randn({5, 3, 4, 2}, d);    // d(loss)/d(y) of one process
  const at::Tensor w0 = at::randn({3}, d), b0 = at::randn({3}, d);

  // One process: torch's batch_norm on all five rows.
  at::Tensor x1 = x.clone().requires_grad_(), w1 = w0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
  at::Tensor mean1 = at::zeros({3}, d), var1 = at::ones({3}, d);
  at::Tensor y1 = at::batch_norm(x1, w1, b1, mean1, var1, true, 0.1, 1e-5, false);
  (y1 * upstream).sum().backward();

  // Two ranks. Each rank's loss is the mean over the job, as the trainer's gradient
  // averaging implies: rank r's loss is sum over its rows of upstream * y, times 2 (the
  // averager divides the parameter gradients by the world size).
  std::vector<at::Tensor> y(2), gx(2), gw(2), gb(2), mean(2), var(2);
  const int64_t begin[2] = {0, 2}, count[2] = {2, 3};
  run_two_ranks([&](int r) {
    at::Tensor xr = x.narrow(0, begin[r], count[r]).clone().requires_grad_();
    at::Tensor wr = w0.clone().requires_grad_(), br = b0.clone().requires_grad_();
    mean[r] = at::zeros({3}, d), var[r] = at::ones({3}, d);
    y[r] = modeling::batch_norm(xr, wr, br, mean[r], var[r], true, 0.1, 1e-5);
    (y[r] * upstream.narrow(0, begin[r], count[r]) * 2).sum().backward();
    gx[r] = xr.grad() / 2, gw[r] = wr.grad() / 2, gb[r] = br.grad() / 2;
  });
  EXPECT_TRUE(at::allclose(at::cat({y[0], y[1]}), y1, 0, 1e-12));
  EXPECT_TRUE(at::allclose(at::cat({gx[0], gx[1]}), x1.grad(), 0, 1e-12));
  EXPECT_TRUE(at::allclose(gw[0] + gw[1], w1.grad(), 0, 1e-12));
  EXPECT_TRUE(at::allclose(gb[0] + gb[1], b1.grad(), 0, 1e-12));
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(at::allclose(mean[r], mean1, 0, 1e-12));
    EXPECT_TRUE(at::allclose(var[r], var1, 0, 1e-12));  // unbiased variance, as torch
  }
}

TEST(SynchronizedBatchNorm, FloatGradientsMatchTorchWithinRounding) {
  at::manual_seed(4);
  const at::Tensor x = at::randn({4, 8, 16, 16}) * 3 - 1, upstream = at::randn({4, 8, 16, 16});
  const at::Tensor w0 = at::randn({8}), b0 = at::randn({8});
  at::Tensor x1 = x.clone().requires_grad_(), w1 = w0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
  at::Tensor m1 = at::zeros({8}), v1 = at::ones({8});
  (at::batch_norm(x1, w1, b1, m1, v1, true, 0.1, 1e-5, false) * upstream).sum().backward();
  std::vector<at::Tensor> gx(2), gw(2);
  run_two_ranks([&](int r) {
    at::Tensor xr = x.narrow(0, 2 * r, 2).clone().requires_grad_(), wr = w0.clone().requires_grad_();
    at::Tensor m = at::zeros({8}), v = at::ones({8});
    (modeling::batch_norm(xr, wr, b0, m, v, true, 0.1, 1e-5) * upstream.narrow(0, 2 * r, 2)).sum().backward();
    gx[r] = xr.grad(), gw[r] = wr.grad();
  });
  EXPECT_TRUE(at::allclose(at::cat({gx[0], gx[1]}), x1.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(gw[0] + gw[1], w1.grad(), 1e-4, 1e-4));
}

TEST(SynchronizedBatchNorm, OneValueInTheWholeJobUsesTheRunningStatistics) {
  const at::Tensor running_mean = at::tensor({1.0f}), running_var = at::tensor({4.0f});
  std::vector<at::Tensor> y(2);
  run_two_ranks([&](int r) {
    const at::Tensor x = r == 0 ? at::tensor({5.0f}).view({1, 1}) : at::zeros({0, 1});
    at::Tensor m = running_mean.clone(), v = running_var.clone();
    y[r] = modeling::batch_norm(x, at::Tensor(), at::Tensor(), m, v, true, 0.1, 0.0);
    EXPECT_TRUE(at::equal(m, running_mean));  // left unchanged
  });
  EXPECT_NEAR(y[0].item<float>(), (5.0 - 1.0) / 2.0, 1e-6);
  EXPECT_EQ(y[1].numel(), 0);
}

TEST(OimMemoryInAJob, EveryRankAppliesTheWholeBatchInRankOrder) {
  at::manual_seed(5);
  const int64_t dim = 8;
  auto make = [&] { return modeling::OIMLoss(modeling::OIMLossOptions(4).num_features(dim).num_cq_size(3)); };
  // Rank 0: identities 1, 1 and an unlabeled person; rank 1: identity 2, background, 1.
  const at::Tensor features = modeling::l2_normalize(at::randn({6, dim}));
  const at::Tensor labels = at::tensor(std::vector<int64_t>{1, 1, -1, 2, -2, 1});
  modeling::OIMLoss one = make();
  one->train();
  one->forward(features, labels);

  std::vector<modeling::OIMLoss> ranks{make(), make()};
  run_two_ranks([&](int r) {
    ranks[r]->train();
    ranks[r]->forward(features.narrow(0, 3 * r, 3), labels.narrow(0, 3 * r, 3));
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(at::allclose(ranks[r]->lut, one->lut, 0, 1e-6)) << "rank " << r;
    EXPECT_TRUE(at::allclose(ranks[r]->cq, one->cq, 0, 1e-6)) << "rank " << r;
    EXPECT_EQ(ranks[r]->queue_header(), one->queue_header());
  }
  EXPECT_GT(one->lut[2].abs().sum().item<float>(), 0);  // rank 1's identity reached rank 0's table
}

}  // namespace
}  // namespace psearch
