// The one top-level guard every executable's main runs under: whatever escapes the program
// (a speculators::Error, a LibTorch c10::Error, std::bad_alloc, any std::exception or anything
// else), on the main thread or on another thread, ends the process with one line on stderr and
// the documented exit code (README.md: 2 usage, 3 plugin, 4 data, 5 distributed, 1 otherwise).
// With SPECULATORS_DEBUG=1 nothing is caught on the way: the terminate handler prints the same
// line followed by the backtrace of the throw site, then exits with the same code.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "speculators/error.h"

namespace speculators {

// SPECULATORS_DEBUG=1 (any value but "" and "0") turns backtraces on.
inline constexpr const char* kDebugEnv = "SPECULATORS_DEBUG";
bool debug_backtraces_enabled();

// What an exception means to a user: its exit code and a one-line message (c10::Error without
// its backtrace, newlines flattened). A null pointer is "terminate called without an exception".
struct FailureReport {
  ExitCode code = ExitCode::kFailure;
  std::string message;
};
FailureReport describe_exception(std::exception_ptr exception);

// Installs the terminate handler (for exceptions that escape a thread, or everything with
// SPECULATORS_DEBUG=1): one line "<program>: error: <message>", the backtrace when debugging,
// then _exit with the code. `program` names the executable in that line.
void install_terminate_guard(const char* program);

// Runs `body` under the guard: its return value, or the exit code of what escaped it after one
// line on stderr.
int run_guarded(const char* program, const std::function<int()>& body);

}  // namespace speculators
