// See device.h.
#include "train/device.h"

#include <ATen/Context.h>

#include <cstdlib>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

CudaInfo cuda_info() {
  CudaInfo info;
  info.built = at::hasCUDA();
  info.devices = info.built ? static_cast<int>(torch::cuda::device_count()) : 0;
  return info;
}

std::string TrainingDevice::describe() const {
  return cat(device.str(), ", ", bf16 ? "bf16 autocast (fp32 master weights and optimizer state)" : "fp32",
             ", verifier hidden states ", hidden_states_dtype == torch::kBFloat16 ? "bfloat16" : "float32");
}

namespace {

torch::Device cuda_device(const std::string& flag, int index, const CudaInfo& cuda) {
  if (!cuda.built) {
    fail_usage(cat("--device ", flag, ": this build's LibTorch has no CUDA support (a CPU-only LibTorch); "
                   "build against a CUDA LibTorch (docs/gpu.md) or train with --device cpu"));
  }
  if (cuda.devices == 0) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    fail_usage(cat("--device ", flag, ": LibTorch sees no CUDA device (no GPU or driver",
                   visible != nullptr ? cat(", CUDA_VISIBLE_DEVICES=\"", visible, "\"") : std::string(),
                   "); train with --device cpu"));
  }
  if (index < 0 || index >= cuda.devices) {
    fail_usage(cat("--device ", flag, ": CUDA device ", index, " does not exist (LibTorch sees ", cuda.devices,
                   " device(s), 0..", cuda.devices - 1, ")"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Device parse_device(const std::string& text, int local_rank, const CudaInfo& cuda) {
  if (text == "cpu") return torch::kCPU;
  if (text == "auto") return cuda.built && cuda.devices > 0 ? cuda_device(text, local_rank, cuda) : torch::kCPU;
  if (text == "cuda") return cuda_device(text, local_rank, cuda);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() < 10 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return cuda_device(text, std::stoi(text.substr(5)), cuda);
  }
  fail_usage(cat("--device \"", text, "\": expected auto, cpu, cuda or cuda:N"));
}

}  // namespace

TrainingDevice resolve_training_device(const std::string& device, const Json& precision,
                                       const Json& hidden_states_dtype, int local_rank, const CudaInfo& cuda) {
  TrainingDevice out;
  out.device = parse_device(device, local_rank, cuda);
  if (precision.is_null()) {
    out.bf16 = out.device.is_cuda();
  } else if (precision.as_string() == "bf16" || precision.as_string() == "fp32") {
    out.bf16 = precision.as_string() == "bf16";
  } else {
    fail_usage(cat("--precision \"", precision.as_string(), "\": expected bf16 or fp32"));
  }
  if (hidden_states_dtype.is_null()) {
    out.hidden_states_dtype = out.bf16 ? torch::kBFloat16 : torch::kFloat32;
  } else if (hidden_states_dtype.as_string() == "bfloat16") {
    out.hidden_states_dtype = torch::kBFloat16;
  } else if (hidden_states_dtype.as_string() == "float32") {
    out.hidden_states_dtype = torch::kFloat32;
  } else {
    fail_usage(cat("--hidden-states-dtype \"", hidden_states_dtype.as_string(),
                   "\": expected bfloat16 or float32 (float16 needs gradient scaling and is not supported)"));
  }
  return out;
}

TrainingDevice resolve_training_device(const DeviceOptions& options, int local_rank) {
  auto json = [](const std::optional<std::string>& value) { return value ? Json(*value) : Json(); };
  return resolve_training_device(options.device, json(options.precision), json(options.hidden_states_dtype),
                                 local_rank, cuda_info());
}

void pin_batch(Batch& batch) {
  for (auto& [key, t] : batch) {
    if (t.defined() && t.device().is_cpu() && !t.is_pinned()) t = t.pin_memory();
  }
}

void batch_to_device(Batch& batch, torch::Device device) {
  for (auto& [key, t] : batch) {
    if (t.defined() && t.device() != device) t = t.to(device, /*non_blocking=*/t.is_pinned());
  }
}

}  // namespace speculators
