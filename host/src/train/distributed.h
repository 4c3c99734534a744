// Data parallel training over a Communicator (docs/distributed.md): the units a model is
// sharded by, which rank owns which unit, gradient averaging, the global gradient norm, and
// gathering what is sharded back into one whole state for a checkpoint.
//
//   --shard none       every rank holds everything; gradients are averaged with all_reduce in
//                      flat buckets, every rank steps every parameter.
//   --shard optimizer  each unit (every element of the model's layers(), plus one unit for the
//                      rest) is owned by one rank (LPT by size). Gradients are reduce-scattered
//                      into the owners' segments, only the owner keeps a unit's gradients and
//                      optimizer state and steps it, and the updated parameters are all-gathered.
//   --shard full       as optimizer, and between steps a rank also keeps only its own units'
//                      parameters: the others are gathered at the start of each step (and for
//                      validation and checkpoints) and released after the optimizer step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/communicator.h"
#include "train/optim.h"

namespace speculators {

enum class ShardMode { kNone, kOptimizer, kFull };
ShardMode parse_shard_mode(const std::string& text);
std::string to_string(ShardMode mode);

class DataParallel {
 public:
  // `trainable` in the model's parameter order; the same on every rank.
  DataParallel(Communicator& comm, ShardMode mode, DraftModel& model, std::vector<NamedParam> trainable,
               std::int64_t bucket_mb = 25);

  ShardMode mode() const { return mode_; }
  int rank() const { return comm_.rank(); }
  int world_size() const { return comm_.world_size(); }
  bool distributed() const { return comm_.world_size() > 1; }
  Communicator& comm() { return comm_; }
  // The parameters this rank's optimizer steps: all of them with --shard none.
  std::vector<NamedParam> owned() const;
  // Unit index of each trainable parameter, the units' names and owners (for logs and docs).
  const std::vector<std::string>& unit_names() const { return unit_names_; }
  const std::vector<int>& unit_owner() const { return unit_owner_; }

  // Every parameter and buffer becomes rank 0's (a fresh run starts from one initialisation).
  void broadcast_model();
  // Averages the gradients over the ranks (none: all of them on every rank; optimizer/full:
  // each rank ends with its own units' averaged gradients, the others are freed).
  void sync_gradients();
  // Gradient clipping as in Trainer.train_epoch: the global L2 norm of the (averaged) gradients,
  // and scaling by max_norm / (norm + 1e-6) when that is below 1. Returns the norm before clipping.
  double clip_grad_norm(double max_norm);
  // After the optimizer step: optimizer mode all-gathers the updated parameters; full mode
  // releases the parameters of units this rank does not own.
  void after_step();
  // full mode: makes every parameter whole (a no-op when it already is or in other modes).
  void gather_parameters();
  // Element-wise sum/max over ranks of a small vector of doubles (flags, counters, metrics).
  std::vector<double> all_reduce(std::vector<double> values, ReduceOp op = ReduceOp::kSum);
  // Every rank's `local` map merged into one on rank 0 (other ranks get an empty map). Names
  // must be unique across ranks.
  NamedTensors gather_to_rank0(const NamedTensors& local);
  void barrier() { comm_.barrier(); }

 private:
  struct Segment {
    std::vector<std::size_t> params;  // indices into trainable_, in order
    std::int64_t numel = 0;
  };
  void release_parameters();
  void all_gather_parameters();
  torch::Tensor pack_owned(bool grads) const;

  Communicator& comm_;
  ShardMode mode_;
  DraftModel& model_;
  std::vector<NamedParam> trainable_;
  std::vector<std::vector<std::int64_t>> shapes_;
  std::vector<int> unit_of_;  // per trainable parameter
  std::vector<std::string> unit_names_;
  std::vector<int> unit_owner_;
  std::vector<Segment> segments_;  // per rank
  std::int64_t segment_numel_ = 0;  // the largest segment: every rank's slice of a flat buffer
  std::vector<std::vector<std::size_t>> buckets_;  // none mode: parameter indices per all_reduce
  bool released_ = false;
};

}  // namespace speculators
