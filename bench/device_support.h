// The benchmark's CUDA-dependent pieces in one place: waiting for a device to finish its queued
// work (so that wall-clock times cover it) and the caching allocator's peak memory. A CPU-only
// LibTorch compiles the CPU side only (SPECULATORS_BENCH_CUDA is 0).
#pragma once

#include <torch/torch.h>

namespace speculators::bench {

// Blocks until `device` has finished all queued work; nothing to do on the CPU.
void synchronize(torch::Device device);

// Resets the peak of memory allocated on a CUDA device (no-op on the CPU).
void reset_peak_device_memory(torch::Device device);

// Peak bytes allocated by LibTorch's CUDA caching allocator on `device` since the last reset, in
// MiB; negative on the CPU (no such counter).
double peak_device_memory_mib(torch::Device device);

}  // namespace speculators::bench
