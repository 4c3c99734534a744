// Mixed precision for one scope (the reference's `torch.autocast(device_type, dtype=...)` around
// forward and loss in speculators/train/trainer.py: Trainer.train_epoch): matmuls and linears
// run in the lower precision, parameters stay what they are (fp32 master weights), losses that
// autocast lists as fp32 ops stay fp32. The LibTorch API for this differs between 1.x and 2.x;
// this is the one place that knows.
#pragma once

#include <torch/torch.h>

namespace speculators {

class AutocastGuard {
 public:
  // Enables autocast to `dtype` for `device`'s type on this thread until destruction; does nothing
  // when `enabled` is false. The previous state is restored on destruction.
  AutocastGuard(torch::Device device, torch::ScalarType dtype, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

  // Whether autocast is on for `device`'s type on this thread.
  static bool active(torch::Device device);

 private:
  bool enabled_;
  torch::DeviceType type_;
  bool previous_enabled_ = false;
  torch::ScalarType previous_dtype_ = torch::kFloat32;
};

}  // namespace speculators
