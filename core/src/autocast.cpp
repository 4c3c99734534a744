// AutocastGuard (autocast.h): LibTorch 1.x has per-device setters (set_cpu_enabled,
// set_autocast_cpu_dtype, set_enabled for CUDA); 2.x takes the device type as an argument.
#include "speculators/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

#if TORCH_VERSION_MAJOR >= 2
bool is_enabled(torch::DeviceType type) { return at::autocast::is_autocast_enabled(type); }
void set_enabled(torch::DeviceType type, bool on) { at::autocast::set_autocast_enabled(type, on); }
torch::ScalarType get_dtype(torch::DeviceType type) { return at::autocast::get_autocast_dtype(type); }
void set_dtype(torch::DeviceType type, torch::ScalarType dtype) { at::autocast::set_autocast_dtype(type, dtype); }
#else
bool is_enabled(torch::DeviceType type) {
  return type == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set_enabled(torch::DeviceType type, bool on) {
  if (type == torch::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
torch::ScalarType get_dtype(torch::DeviceType type) {
  return type == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_dtype(torch::DeviceType type, torch::ScalarType dtype) {
  if (type == torch::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(torch::Device device, torch::ScalarType dtype, bool enabled)
    : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
  if (type_ != torch::kCPU && type_ != torch::kCUDA) {
    fail(cat("autocast: device ", device.str(), " is not supported (cpu or cuda)"));
  }
  previous_enabled_ = is_enabled(type_);
  previous_dtype_ = get_dtype(type_);
  set_dtype(type_, dtype);
  set_enabled(type_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  // The outermost scope drops the casts it cached (as torch.autocast.__exit__).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(type_, previous_enabled_);
  set_dtype(type_, previous_dtype_);
}

bool AutocastGuard::active(torch::Device device) { return is_enabled(device.type()); }

}  // namespace speculators
