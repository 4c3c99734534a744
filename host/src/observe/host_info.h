// What this host was built with: printed by --version and recorded in train_command.txt.
#pragma once

#include <string>

namespace speculators {

// "speculators 0.1.0 (LibTorch 1.13, C++11 ABI 1, CUDA 0, GNU 12.2.0, Release)"
std::string host_version_string();

}  // namespace speculators
