// What this host was built with: printed by --version and recorded in train_command.txt.
#pragma once

#include <string>

namespace speculators {

// "speculators 2.1.0 (plugin ABI 2.1, LibTorch 1.13.0, C++11 ABI 1, CUDA 0, GNU 12.2.0, Release)":
// the SDK version, the plugin ABI it speaks, the LibTorch it was built against and the build flags.
std::string host_version_string();

}  // namespace speculators
