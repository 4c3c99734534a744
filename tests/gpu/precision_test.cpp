// Device and precision (docs/gpu.md): --device/--precision/--hidden-states-dtype resolution
// against what LibTorch offers (a machine without CUDA included), AutocastGuard's scope, and a bf16
// autocast step on the CPU against the same step in fp32 (the loss within bf16 tolerance, master
// weights, gradients and AdamW state in fp32), as the reference trains under
// `torch.autocast(device_type, dtype=bfloat16)` (speculators/train/trainer.py: Trainer.train_epoch).
#include <catch2/catch.hpp>

#include "speculators/autocast.h"
#include "speculators/error.h"
#include "tiny_step.h"
#include "train/device.h"
#include "train/optim.h"

using namespace speculators;

namespace {

CudaInfo no_cuda() { return {}; }
CudaInfo cuda_built_no_gpu() { return {true, 0}; }
CudaInfo two_gpus() { return {true, 2}; }

std::string usage_error(const std::string& device, const CudaInfo& cuda, int local_rank = 0) {
  try {
    resolve_training_device(device, Json(), Json(), local_rank, cuda);
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    return e.what();
  }
  FAIL("no error for --device " << device);
  return "";
}

}  // namespace

TEST_CASE("device: auto is cuda:<LOCAL_RANK> with a GPU, else the CPU in fp32", "[device]") {
  auto cpu = resolve_training_device("auto", Json(), Json(), 3, no_cuda());
  CHECK(cpu.device == torch::Device(torch::kCPU));
  CHECK_FALSE(cpu.bf16);
  CHECK(cpu.hidden_states_dtype == torch::kFloat32);
  CHECK(resolve_training_device("auto", Json(), Json(), 0, cuda_built_no_gpu()).device.is_cpu());

  auto gpu = resolve_training_device("auto", Json(), Json(), 1, two_gpus());
  CHECK(gpu.device == torch::Device(torch::kCUDA, 1));
  CHECK(gpu.bf16);  // bf16 is the default on CUDA
  CHECK(gpu.hidden_states_dtype == torch::kBFloat16);
  CHECK(resolve_training_device("cuda", Json(), Json(), 1, two_gpus()).device == torch::Device(torch::kCUDA, 1));
  CHECK(resolve_training_device("cuda:0", Json(), Json(), 1, two_gpus()).device == torch::Device(torch::kCUDA, 0));
  CHECK(resolve_training_device("cpu", Json(), Json(), 0, two_gpus()).device.is_cpu());
}

TEST_CASE("device: precision and hidden-states dtype follow the flags, defaults per device", "[device]") {
  auto cpu_bf16 = resolve_training_device("cpu", Json("bf16"), Json(), 0, no_cuda());
  CHECK(cpu_bf16.bf16);
  CHECK(cpu_bf16.hidden_states_dtype == torch::kBFloat16);
  auto gpu_fp32 = resolve_training_device("cuda:1", Json("fp32"), Json(), 0, two_gpus());
  CHECK_FALSE(gpu_fp32.bf16);
  CHECK(gpu_fp32.hidden_states_dtype == torch::kFloat32);
  auto mixed = resolve_training_device("cpu", Json("bf16"), Json("float32"), 0, no_cuda());
  CHECK(mixed.bf16);
  CHECK(mixed.hidden_states_dtype == torch::kFloat32);
  CHECK_THROWS_WITH(resolve_training_device("cpu", Json("fp16"), Json(), 0, no_cuda()),
                    Catch::Contains("--precision \"fp16\""));
  CHECK_THROWS_WITH(resolve_training_device("cpu", Json(), Json("float16"), 0, no_cuda()),
                    Catch::Contains("float16 needs gradient scaling"));
}

TEST_CASE("device: a CUDA device without CUDA is a usage error naming what is missing", "[device]") {
  CHECK_THAT(usage_error("cuda", no_cuda()), Catch::Contains("--device cuda") && Catch::Contains("no CUDA support"));
  CHECK_THAT(usage_error("cuda:0", no_cuda()), Catch::Contains("no CUDA support"));
  CHECK_THAT(usage_error("cuda", cuda_built_no_gpu()), Catch::Contains("sees no CUDA device"));
  CHECK_THAT(usage_error("cuda:2", two_gpus()), Catch::Contains("CUDA device 2 does not exist") &&
                                                    Catch::Contains("0..1"));
  CHECK_THAT(usage_error("auto", two_gpus(), 5), Catch::Contains("CUDA device 5 does not exist"));
  CHECK_THAT(usage_error("gpu", two_gpus()), Catch::Contains("expected auto, cpu, cuda or cuda:N"));
  CHECK_THAT(usage_error("cuda:x", two_gpus()), Catch::Contains("expected auto, cpu, cuda or cuda:N"));
}

TEST_CASE("device: this machine's LibTorch agrees with torch::cuda", "[device]") {
  const CudaInfo here = cuda_info();
  CHECK((here.built && here.devices > 0) == torch::cuda::is_available());
  if (!torch::cuda::is_available()) {
    CHECK(resolve_training_device("auto", Json(), Json(), 0, here).device.is_cpu());
    CHECK_THROWS_AS(resolve_training_device("cuda", Json(), Json(), 0, here), Error);
  }
}

TEST_CASE("autocast: bf16 inside the guard's scope only, nested scopes restore", "[autocast]") {
  torch::nn::Linear linear(8, 4);
  const auto x = torch::randn({2, 8});
  CHECK(linear(x).scalar_type() == torch::kFloat32);
  {
    AutocastGuard guard(torch::kCPU, torch::kBFloat16);
    CHECK(AutocastGuard::active(torch::kCPU));
    CHECK(linear(x).scalar_type() == torch::kBFloat16);
    CHECK(linear->weight.scalar_type() == torch::kFloat32);  // weights are cast per op, not changed
    {
      AutocastGuard off(torch::kCPU, torch::kBFloat16, /*enabled=*/false);
      CHECK(linear(x).scalar_type() == torch::kBFloat16);  // a disabled guard changes nothing
    }
    {
      AutocastGuard inner(torch::kCPU, torch::kBFloat16);
    }
    CHECK(AutocastGuard::active(torch::kCPU));  // the inner guard restored the outer state
  }
  CHECK_FALSE(AutocastGuard::active(torch::kCPU));
  CHECK(linear(x).scalar_type() == torch::kFloat32);
}

TEST_CASE("precision: a bf16 autocast step on the CPU matches fp32 within bf16 tolerance", "[autocast]") {
  auto fp32_model = testing::tiny_step_model();
  auto bf16_model = testing::tiny_step_model();
  const auto fp32 = testing::tiny_step(fp32_model, torch::kCPU, false);
  const auto bf16 = testing::tiny_step(bf16_model, torch::kCPU, true);
  INFO("fp32 loss " << fp32.loss << ", bf16 loss " << bf16.loss);
  // bf16 keeps 8 significant bits (unit roundoff 2^-9); through two layers the loss stays within 1%.
  CHECK(std::abs(bf16.loss - fp32.loss) <= 1e-2 * std::abs(fp32.loss));
  CHECK(testing::relative_max_diff({bf16.logits}, {fp32.logits}) < 3e-2);
  CHECK(testing::relative_max_diff(bf16.grads, fp32.grads) < 5e-2);
  // ... and it is not the fp32 computation: autocast did change the arithmetic.
  CHECK(bf16.loss != fp32.loss);
  for (std::size_t i = 0; i < bf16.param_dtypes.size(); ++i) {
    CHECK(bf16.param_dtypes[i] == torch::kFloat32);  // fp32 master weights
    CHECK(bf16.grad_dtypes[i] == torch::kFloat32);   // fp32 gradients (what is all-reduced)
  }
}

TEST_CASE("precision: AdamW after a bf16 step keeps fp32 weights and fp32 state", "[autocast]") {
  auto model = testing::tiny_step_model();
  testing::tiny_step(model, torch::kCPU, true);
  std::vector<NamedParam> params;
  for (const auto& item : model->named_parameters()) params.push_back({item.key(), item.value()});
  AdamW adamw(params, 1e-3, AdamWOptions{});
  adamw.step();
  NamedTensors state;
  adamw.save_state("adamw/", state);
  CHECK(state.size() == 3 * params.size());
  for (const auto& [name, t] : state) {
    if (name.size() > 5 && name.substr(name.size() - 5) == "/step") continue;
    INFO(name);
    CHECK(t.scalar_type() == torch::kFloat32);
  }
  for (const auto& p : params) CHECK(p.param.scalar_type() == torch::kFloat32);
}
