// Where and in which precision a run trains (docs/gpu.md): --device auto|cpu|cuda|cuda:N,
// --precision bf16|fp32 and --hidden-states-dtype bfloat16|float32 resolved against what this
// LibTorch build and machine offer, and the batch's trip to the device (pinned host memory,
// copies that do not block the host).
#pragma once

#include <string>

#include "speculators/algorithm.h"
#include "speculators/json.h"
#include "train/train_options.h"

namespace speculators {

// What LibTorch reports about CUDA on this machine.
struct CudaInfo {
  bool built = false;  // this LibTorch has CUDA support loaded
  int devices = 0;     // visible CUDA devices
};
CudaInfo cuda_info();

struct TrainingDevice {
  torch::Device device{torch::kCPU};
  // Forward and loss under bf16 autocast; weights, gradients and optimizer state stay fp32.
  bool bf16 = false;
  // dtype the online verifier runs in (its hidden states feed the draft).
  torch::ScalarType hidden_states_dtype = torch::kFloat32;
  std::string describe() const;
};

// `device`: auto (cuda:<local_rank> when CUDA is available, else cpu), cpu, cuda (=
// cuda:<local_rank>) or cuda:N. `precision`: bf16, fp32 or null (bf16 on CUDA, fp32 on CPU).
// `hidden_states_dtype`: bfloat16, float32 or null (bfloat16 with bf16 precision, else float32).
// A CUDA device without CUDA (not in this build, none visible, index out of range) is a usage
// error (exit 2) that says what is missing.
TrainingDevice resolve_training_device(const std::string& device, const Json& precision,
                                       const Json& hidden_states_dtype, int local_rank, const CudaInfo& cuda);
// The same from the job's options, with this machine's cuda_info().
TrainingDevice resolve_training_device(const DeviceOptions& options, int local_rank);

// Page-locks the batch's tensors (for copies to a CUDA device that do not block the host).
void pin_batch(Batch& batch);
// Moves every tensor of the batch to `device`; from pinned memory the copy is asynchronous.
void batch_to_device(Batch& batch, torch::Device device);

}  // namespace speculators
