// The CUDA path against the CPU path (docs/gpu.md): the same weights and batch give the same
// fp32 step on a GPU (losses, logits and gradients within 1e-5) and a bf16 autocast step within
// bf16 tolerance of the CPU's fp32 step; batches moved from pinned memory arrive intact. On a
// machine without a GPU the binary prints why and exits 77, which ctest reports as skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>

#include "tiny_step.h"
#include "train/device.h"

using namespace speculators;

TEST_CASE("cuda: an fp32 step on the GPU matches the CPU within 1e-5", "[cuda]") {
  auto cpu_model = testing::tiny_step_model();
  auto gpu_model = testing::tiny_step_model();
  const auto cpu = testing::tiny_step(cpu_model, torch::kCPU, false);
  const auto gpu = testing::tiny_step(gpu_model, torch::Device(torch::kCUDA, 0), false);
  CHECK(std::abs(gpu.loss - cpu.loss) <= 1e-5 * std::abs(cpu.loss));
  CHECK(testing::relative_max_diff({gpu.logits}, {cpu.logits}) < 1e-5);
  CHECK(testing::relative_max_diff(gpu.grads, cpu.grads) < 1e-5);
}

TEST_CASE("cuda: a bf16 autocast step on the GPU matches the CPU's fp32 within bf16 tolerance", "[cuda]") {
  auto cpu_model = testing::tiny_step_model();
  auto gpu_model = testing::tiny_step_model();
  const auto cpu = testing::tiny_step(cpu_model, torch::kCPU, false);
  const auto gpu = testing::tiny_step(gpu_model, torch::Device(torch::kCUDA, 0), true);
  CHECK(std::abs(gpu.loss - cpu.loss) <= 1e-2 * std::abs(cpu.loss));
  CHECK(testing::relative_max_diff({gpu.logits}, {cpu.logits}) < 3e-2);
  CHECK(testing::relative_max_diff(gpu.grads, cpu.grads) < 5e-2);
  for (auto dtype : gpu.param_dtypes) CHECK(dtype == torch::kFloat32);
  for (auto dtype : gpu.grad_dtypes) CHECK(dtype == torch::kFloat32);
}

TEST_CASE("cuda: a pinned batch copied without blocking arrives intact", "[cuda]") {
  Batch batch;
  batch["input_ids"] = torch::arange(1000, torch::kLong).view({1, 1000});
  batch["hidden_states"] = torch::randn({1, 1000, 24});
  const Batch host = batch;
  pin_batch(batch);
  for (const auto& [key, t] : batch) CHECK(t.is_pinned());
  batch_to_device(batch, torch::Device(torch::kCUDA, 0));
  for (const auto& [key, t] : batch) {
    CHECK(t.is_cuda());
    CHECK(torch::equal(t.cpu(), host.at(key)));  // .cpu() synchronises with the copy
  }
}

int main(int argc, char* argv[]) {
  if (!torch::cuda::is_available()) {
    const CudaInfo cuda = cuda_info();
    std::cout << "SKIP: no CUDA GPU: " << (cuda.built ? "LibTorch sees no CUDA device" : "this LibTorch has no CUDA support")
              << "; the CUDA parity tests need one\n";
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
