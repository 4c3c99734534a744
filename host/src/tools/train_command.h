// `speculators-train`: from argv to a trained checkpoint (the host flow of
// speculators/train/cli.py: main).
#pragma once

#include <string>
#include <vector>

namespace speculators {

// Runs the command; returns the process exit code (0 done, 2 usage, 3 plugin, 4 data, 130
// interrupted). Errors are printed, never thrown.
int run_train_command(const std::vector<std::string>& argv);

}  // namespace speculators
