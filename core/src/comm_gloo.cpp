// The local and Gloo communicators, the launcher environment, and make_communicator()
// (communicator.h). Gloo runs through c10d's ProcessGroupGloo; LibTorch 1.13's Gloo group has no
// reduce_scatter or flat all_gather, so those are composed from all_reduce and the list form of
// allgather (docs/distributed.md gives the traffic this costs).
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>

#include "rendezvous.h"
#include "speculators/communicator.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "comm_nccl.h"

namespace speculators {

namespace {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator() : Communicator(std::chrono::milliseconds(0)) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "local"; }
  using Communicator::all_reduce;
  void all_reduce(std::vector<torch::Tensor>&, ReduceOp) override {}
  void broadcast(torch::Tensor&, int) override {}
  void reduce_scatter(torch::Tensor& output, torch::Tensor& input, ReduceOp) override {
    output.copy_(input.reshape(output.sizes()));
  }
  void all_gather(torch::Tensor& output, const torch::Tensor& input) override {
    output.copy_(input.reshape(output.sizes()));
  }
  void barrier() override {}
};

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMax: return c10d::ReduceOp::MAX;
    case ReduceOp::kMin: return c10d::ReduceOp::MIN;
    case ReduceOp::kSum: break;
  }
  return c10d::ReduceOp::SUM;
}

void check_tensor(const char* op, const torch::Tensor& t) {
  if (!t.defined() || !t.is_contiguous() || !t.device().is_cpu()) {
    fail_usage(cat("gloo ", op, ": tensors must be defined, contiguous and on the CPU"));
  }
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const RankInfo& info, std::chrono::milliseconds timeout)
      : Communicator(timeout), rendezvous_(info, timeout) {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    if (iface != nullptr && *iface != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (info.local_world_size == info.world_size) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    try {
      auto store = c10::make_intrusive<c10d::PrefixStore>("speculators/gloo", rendezvous_.store());
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, info.rank, info.world_size, options);
    } catch (const std::exception& e) {
      rendezvous_.fail("connecting the Gloo group", e.what());
    }
  }
  ~GlooCommunicator() override {
    rendezvous_.begin_teardown();
    rendezvous_.stop_heartbeat();
  }

  int rank() const override { return rendezvous_.info().rank; }
  int world_size() const override { return rendezvous_.info().world_size; }
  std::string backend() const override { return "gloo"; }
  using Communicator::all_reduce;

  void all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op) override {
    // One c10d call per tensor (Gloo wants equal sizes inside one call); all in flight at once.
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::AllreduceOptions opts;
    opts.reduceOp = to_c10d(op);
    opts.timeout = timeout_;
    run("all_reduce", [&] {
      for (auto& t : tensors) {
        check_tensor("all_reduce", t);
        std::vector<at::Tensor> one{t};
        works.push_back(group_->allreduce(one, opts));
      }
      for (auto& w : works) w->wait(timeout_);
    });
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    check_tensor("broadcast", tensor);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = timeout_;
    run("broadcast", [&] {
      std::vector<at::Tensor> one{tensor};
      group_->broadcast(one, opts)->wait(timeout_);
    });
  }

  void reduce_scatter(torch::Tensor& output, torch::Tensor& input, ReduceOp op) override {
    check_tensor("reduce_scatter", output);
    check_tensor("reduce_scatter", input);
    const auto n = output.numel();
    if (input.numel() != n * world_size()) {
      fail_usage(cat("reduce_scatter: input has ", input.numel(), " elements, expected ", n, " x ", world_size()));
    }
    all_reduce(input, op);
    output.copy_(input.reshape({-1}).narrow(0, n * rank(), n).reshape(output.sizes()));
  }

  void all_gather(torch::Tensor& output, const torch::Tensor& input) override {
    check_tensor("all_gather", output);
    check_tensor("all_gather", input);
    const auto n = input.numel();
    if (output.numel() != n * world_size()) {
      fail_usage(cat("all_gather: output has ", output.numel(), " elements, expected ", n, " x ", world_size()));
    }
    auto flat = output.view({-1});
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size(); ++r) outputs[0].push_back(flat.narrow(0, n * r, n));
    std::vector<at::Tensor> inputs{input.reshape({-1})};
    c10d::AllgatherOptions opts;
    opts.timeout = timeout_;
    run("all_gather", [&] { group_->allgather(outputs, inputs, opts)->wait(timeout_); });
  }

  void barrier() override {
    c10d::BarrierOptions opts;
    opts.timeout = timeout_;
    run("barrier", [&] { group_->barrier(opts)->wait(timeout_); });
  }

 private:
  template <typename F>
  void run(const char* op, F&& f) {
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      rendezvous_.fail(op, e.what());
    }
  }

  detail::Rendezvous rendezvous_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || x < 0 || x > 1 << 30) {
    fail_usage(cat("environment variable ", name, "=\"", v, "\" is not a non-negative integer"));
  }
  return static_cast<int>(x);
}

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

RankInfo rank_info_from_environment() {
  RankInfo info;
  if (env("RANK") != nullptr || env("WORLD_SIZE") != nullptr) {
    info.launcher = env("SPECULATORS_LAUNCHER") != nullptr ? env("SPECULATORS_LAUNCHER") : "torchrun";
    info.rank = env_int("RANK", 0);
    info.world_size = env_int("WORLD_SIZE", 1);
    info.local_rank = env_int("LOCAL_RANK", info.rank);
    info.local_world_size = env_int("LOCAL_WORLD_SIZE", info.world_size);
  } else if (env("SLURM_PROCID") != nullptr && env("SLURM_NTASKS") != nullptr) {
    info.launcher = "slurm";
    info.rank = env_int("SLURM_PROCID", 0);
    info.world_size = env_int("SLURM_NTASKS", 1);
    info.local_rank = env_int("SLURM_LOCALID", 0);
    // SLURM_NTASKS_PER_NODE may read "2(x3)"; one node is all that matters here (loopback Gloo).
    info.local_world_size = env_int("SLURM_NNODES", 1) == 1 ? info.world_size : 1;
    if (env("MASTER_ADDR") == nullptr && env("SLURM_LAUNCH_NODE_IPADDR") != nullptr) {
      info.master_addr = env("SLURM_LAUNCH_NODE_IPADDR");
    }
  } else if (env("OMPI_COMM_WORLD_RANK") != nullptr) {
    info.launcher = "openmpi";
    info.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    info.world_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    info.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    info.local_world_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", info.world_size);
  } else {
    return info;
  }
  if (env("MASTER_ADDR") != nullptr) info.master_addr = env("MASTER_ADDR");
  info.master_port = env_int("MASTER_PORT", 29500);
  if (info.world_size < 1) fail_usage(cat(info.launcher, " environment: world size ", info.world_size, " < 1"));
  if (info.rank >= info.world_size) {
    fail_usage(cat(info.launcher, " environment: rank ", info.rank, " is outside a world of ", info.world_size));
  }
  if (info.master_port < 1 || info.master_port > 65535) {
    fail_usage(cat("MASTER_PORT=", info.master_port, " is not a TCP port"));
  }
  if (info.world_size > 1 && info.world_size != info.local_world_size && info.master_addr == "127.0.0.1") {
    fail_usage(cat(info.launcher, " environment: ", info.world_size, " ranks over several machines but no "
                   "MASTER_ADDR (the address of rank 0's machine)"));
  }
  return info;
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend, const RankInfo& info,
                                                std::chrono::milliseconds timeout, int device) {
  if (backend == "gloo") return std::make_unique<GlooCommunicator>(info, timeout);
  if (backend == "nccl") return detail::make_nccl_communicator(info, timeout, device);  // comm_nccl_stub.cpp without it
  fail_usage(cat("unknown distributed backend \"", backend, "\" (expected gloo or nccl)"));
}

}  // namespace speculators
