// See device_support.h. The CUDA branch is compiled only against a CUDA LibTorch.
#include "device_support.h"

#if SPECULATORS_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

namespace speculators::bench {

void synchronize(torch::Device device) {
#if SPECULATORS_BENCH_CUDA
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
#else
  (void)device;
#endif
}

void reset_peak_device_memory(torch::Device device) {
#if SPECULATORS_BENCH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  (void)device;
#endif
}

double peak_device_memory_mib(torch::Device device) {
#if SPECULATORS_BENCH_CUDA
  if (device.is_cuda()) {
    // allocated_bytes[0] is the aggregate over small and large pools (StatType::AGGREGATE).
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#else
  (void)device;
#endif
  return -1.0;
}

}  // namespace speculators::bench
