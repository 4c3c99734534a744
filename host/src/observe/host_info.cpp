// The host's build fingerprint (see host_info.h).
#include "observe/host_info.h"

#include <torch/version.h>

#include "speculators/build_config.h"
#include "speculators/log.h"
#include "speculators/plugin/abi.h"

namespace speculators {

std::string host_version_string() {
  return cat("speculators ", SPECULATORS_VERSION, " (plugin ABI ", SPECULATORS_PLUGIN_ABI_MAJOR, ".",
             SPECULATORS_PLUGIN_ABI_MINOR, ", LibTorch ", TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, ".",
             TORCH_VERSION_PATCH, ", C++11 ABI ", _GLIBCXX_USE_CXX11_ABI, ", CUDA ", SPECULATORS_WITH_CUDA, ", ",
             SPECULATORS_BUILD_INFO, ")");
}

}  // namespace speculators
