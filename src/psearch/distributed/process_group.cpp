#include "psearch/distributed/process_group.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef PSEARCH_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "psearch/util/strings.h"

namespace psearch::distributed {
namespace {

std::runtime_error failed(int rank, const char* what, const std::string& reason) {
  return std::runtime_error("rank " + std::to_string(rank) + ": " + what +
                            " failed (another rank stopped, or the network failed, or it timed out): " + reason);
}

/// Converts c10d failures (a peer gone, a timeout) into the one-line errors users see.
template <class F>
auto translate_errors(int rank, const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    throw failed(rank, what, util::first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // Gloo's own (gloo::IoException: a peer closed its connection)
    throw failed(rank, what, util::first_line(e.what()));
  }
}

/// Runs the collective `op` on `t` in place: Gloo needs a contiguous tensor, so a
/// non-contiguous one goes through a contiguous copy.
template <class Op>
void in_place(at::Tensor& t, Op&& op) {
  std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
  op(one)->wait();
  if (!one[0].is_same(t)) t.copy_(one[0]);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, const Environment& env,
                                           std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // torch.distributed's choice of interface: GLOO_SOCKET_IFNAME when set, otherwise the
  // address this machine's hostname resolves to; loopback jobs stay on loopback.
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (is_loopback(env.master_addr))
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
}

c10::intrusive_ptr<c10d::ProcessGroup> make_group(const c10::intrusive_ptr<c10d::Store>& store, const Environment& env,
                                                  c10::Device device, std::chrono::milliseconds timeout) {
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, env.rank, env.world_size);
  if (device.is_cuda()) {
#ifdef PSEARCH_WITH_CUDA
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
    group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
    return group;
#else
    throw std::runtime_error("this psearch was built without CUDA, so it cannot train on " + device.str());
#endif
  }
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, make_gloo(store, env, timeout));
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  return group;
}

}  // namespace

struct ProcessGroup::Groups {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> gradients;  ///< the Reducer's bucket all-reduces only
  c10::intrusive_ptr<c10d::ProcessGroup> model;      ///< everything else, in program order
};

ProcessGroup::ProcessGroup(const Environment& env, c10::Device device, std::chrono::milliseconds timeout)
    : env_(env), device_(device), groups_(std::make_unique<Groups>()) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = env.world_size;
    options.waitWorkers = true;
    options.timeout = timeout;
    groups_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    groups_->gradients = make_group(c10::make_intrusive<c10d::PrefixStore>("gradients", groups_->store), env, device, timeout);
    groups_->model = make_group(c10::make_intrusive<c10d::PrefixStore>("model", groups_->store), env, device, timeout);
  } catch (const c10::Error& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                             ": cannot join the job at " + where + ": " + util::first_line(e.what_without_backtrace()));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::require_same(const std::string& what, const std::string& value) {
  const std::string key = "require_same/" + what;
  bool differs = false;
  translate_errors(env_.rank, "comparing the ranks' settings", [&] {
    if (env_.rank == 0) {
      groups_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    } else {
      const std::vector<uint8_t> reference = groups_->store->get(key);
      differs = std::string(reference.begin(), reference.end()) != value;
    }
  });
  if (any(differs))
    throw std::runtime_error("rank " + std::to_string(env_.rank) + ": the " + what + " differs between the ranks" +
                             (differs ? " (this rank's differs from rank 0's)" : "") +
                             "; start every rank with the same one");
}

void ProcessGroup::broadcast_from_rank0(std::vector<at::Tensor>& tensors) {
  translate_errors(env_.rank, "broadcasting the model", [&] {
    for (at::Tensor& t : tensors)  // one tensor per call, as Gloo broadcasts
      in_place(t, [&](std::vector<at::Tensor>& one) { return groups_->model->broadcast(one, c10d::BroadcastOptions{0}); });
  });
}

bool ProcessGroup::any(bool flag) {
  std::vector<at::Tensor> value{at::tensor({flag ? 1.0f : 0.0f}).to(device_)};
  translate_errors(env_.rank, "a stop/error vote", [&] {
    groups_->model->allreduce(value, c10d::AllreduceOptions{c10d::ReduceOp::MAX})->wait();
  });
  return value[0].item<float>() > 0;
}

std::vector<double> ProcessGroup::mean(const std::vector<double>& values) {
  if (values.empty()) return values;
  std::vector<at::Tensor> sum{at::tensor(values, at::kDouble).to(device_)};
  translate_errors(env_.rank, "averaging log values", [&] { groups_->model->allreduce(sum)->wait(); });
  const at::Tensor mean = (sum[0] / static_cast<double>(env_.world_size)).cpu();
  return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
}

void ProcessGroup::barrier() {
  translate_errors(env_.rank, "a barrier", [&] { groups_->model->barrier()->wait(); });
}

at::Tensor ProcessGroup::all_gather_rows(const at::Tensor& rows) {
  return translate_errors(env_.rank, "gathering rows from the ranks", [&] {
    const int world = env_.world_size;
    // Row counts first, then rows padded to the largest count (Gloo gathers equal shapes).
    std::vector<at::Tensor> count{at::tensor({rows.size(0)}, at::kLong).to(rows.device())};
    std::vector<std::vector<at::Tensor>> counts(1);
    for (int r = 0; r < world; ++r) counts[0].push_back(at::empty_like(count[0]));
    groups_->model->allgather(counts, count)->wait();
    std::vector<int64_t> n(world);
    for (int r = 0; r < world; ++r) n[r] = counts[0][r].item<int64_t>();
    const int64_t most = *std::max_element(n.begin(), n.end());
    std::vector<int64_t> shape = rows.sizes().vec();
    shape[0] = most;
    at::Tensor padded = at::zeros(shape, rows.options());
    if (rows.size(0) > 0) padded.narrow(0, 0, rows.size(0)).copy_(rows.detach());
    std::vector<at::Tensor> input{padded};
    std::vector<std::vector<at::Tensor>> gathered(1);
    for (int r = 0; r < world; ++r) gathered[0].push_back(at::empty_like(padded));
    groups_->model->allgather(gathered, input)->wait();
    std::vector<at::Tensor> parts;
    for (int r = 0; r < world; ++r) parts.push_back(gathered[0][r].narrow(0, 0, n[r]));
    return at::cat(parts);
  });
}

void ProcessGroup::all_reduce_sum(at::Tensor& values) {
  translate_errors(env_.rank, "summing values over the ranks", [&] {
    in_place(values, [&](std::vector<at::Tensor>& one) { return groups_->model->allreduce(one); });
  });
}

namespace {

/// Drops the Reducer's advice to turn find_unused_parameters off: whether a model leaves a
/// parameter without gradient depends on the batch (no labeled person, no positive), so
/// it stays on; every other warning goes to the handler that was there before.
class ReducerWarningFilter : public c10::WarningHandler {
 public:
  explicit ReducerWarningFilter(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("find_unused_parameters=True was specified") != std::string::npos) return;
    next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};

}  // namespace

struct GradientAverager::Impl {
  std::unique_ptr<c10d::Reducer> reducer;
  int rank = 0;
  ReducerWarningFilter filter{c10::WarningUtils::get_warning_handler()};
  c10::WarningUtils::WarningHandlerGuard filter_guard{&filter};
};

GradientAverager::GradientAverager(ProcessGroup& group, std::vector<at::Tensor> parameters, int64_t bucket_mb)
    : impl_(std::make_unique<Impl>()) {
  impl_->rank = group.rank();
  const size_t bucket_bytes = static_cast<size_t>(bucket_mb) * 1024 * 1024;
  // DistributedDataParallel's layout: a small first bucket so communication starts early,
  // buckets in reverse parameter order (the order backward produces gradients in).
  const size_t first_bucket_bytes = std::min<size_t>(bucket_bytes, 1024 * 1024);
  const std::vector<bool> sparse(parameters.size(), false);
  auto [buckets, limits] =
      c10d::compute_bucket_assignment_by_size(parameters, {first_bucket_bytes, bucket_bytes}, sparse);
  std::reverse(buckets.begin(), buckets.end());
  impl_->reducer = std::make_unique<c10d::Reducer>(
      std::move(parameters), std::move(buckets), group.groups().gradients, sparse,
      static_cast<int64_t>(bucket_bytes), /*find_unused_parameters=*/true, /*gradient_as_bucket_view=*/false,
      std::unordered_map<size_t, std::string>{}, static_cast<int64_t>(first_bucket_bytes),
      /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, std::vector<int64_t>{});
}

GradientAverager::~GradientAverager() = default;

void GradientAverager::backward(const at::Tensor& loss) {
  translate_errors(impl_->rank, "the backward pass with its gradient all-reduce", [&] {
    impl_->reducer->prepare_for_backward({loss});
    loss.backward();
  });
}

}  // namespace psearch::distributed
