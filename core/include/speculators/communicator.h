// The communicator: the collectives the host (and any plugin that wants one) uses across ranks,
// behind one small interface so that no c10d, Gloo or NCCL type crosses the SDK boundary
// (docs/design.md, "Distributed"). Backends:
//   - local: one process; every collective is the identity.
//   - gloo:  c10d's ProcessGroupGloo over a c10d TCPStore rendezvous (CPU tensors).
//   - nccl:  NCCL communicators whose unique id travels through the same TCPStore (GPU; built
//            with -DSPECULATORS_WITH_NCCL=ON or found automatically, see docs/distributed.md).
//
// Every collective has a deadline (the communicator's timeout). When a peer dies or stops
// answering, the collective throws Error(ExitCode::kDistributed) naming the rank at fault: every
// rank adds to its own heartbeat counter in the store, and a failed collective reads them to see
// which rank has gone quiet (or that rank 0, which hosts the store, is unreachable).
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace speculators {

enum class ReduceOp { kSum, kMax, kMin };

// Where this process sits in the job and how to reach rank 0's rendezvous store.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // torchrun | slurm | openmpi | speculators | none
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place, on every tensor of the list (contiguous, same device; sizes may differ).
  virtual void all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op = ReduceOp::kSum) = 0;
  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) {
    std::vector<torch::Tensor> list{tensor};
    all_reduce(list, op);
  }
  // In place: `tensor` on every rank becomes `root`'s.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // `input` holds world_size equal chunks; `output` (one chunk) receives the reduction of chunk
  // rank() over all ranks. `input` is scratch: its contents afterwards are unspecified (Gloo,
  // which has no native reduce-scatter here, reduces the whole buffer in place).
  virtual void reduce_scatter(torch::Tensor& output, torch::Tensor& input, ReduceOp op = ReduceOp::kSum) = 0;
  // `output` holds world_size chunks of input's size; chunk r receives rank r's input.
  virtual void all_gather(torch::Tensor& output, const torch::Tensor& input) = 0;
  virtual void barrier() = 0;

 protected:
  explicit Communicator(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  std::chrono::milliseconds timeout_;
};

// One process: rank 0 of 1.
std::unique_ptr<Communicator> make_local_communicator();

// Reads the launcher's environment: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
// SLURM_NTASKS_PER_NODE; MASTER_ADDR or SLURM_LAUNCH_NODE_IPADDR) or Open MPI
// (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE; MASTER_ADDR). In that order; none
// set means one process. Inconsistent values (rank outside the world, a port that is not a
// number) throw a usage error naming the variable.
RankInfo rank_info_from_environment();

// Joins the job described by `info` (rank 0 hosts the TCPStore) with backend "gloo" or "nccl";
// waits up to `timeout` for every rank to arrive. `device` is the CUDA device for nccl.
std::unique_ptr<Communicator> make_communicator(const std::string& backend, const RankInfo& info,
                                                std::chrono::milliseconds timeout, int device = 0);

// Whether this build has the NCCL backend.
bool nccl_available();

}  // namespace speculators
