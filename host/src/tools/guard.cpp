// The top-level guard of every main (see guard.h): exceptions to exit codes and one line each,
// and a terminate handler for what escapes another thread.
#include "tools/guard.h"

#include <c10/util/Backtrace.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#include "speculators/log.h"

namespace speculators {

namespace {

const char* g_program = "speculators";

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

[[noreturn]] void on_terminate() {
  const FailureReport report = describe_exception(std::current_exception());
  std::fflush(stdout);
  std::fprintf(stderr, "%s: error: %s\n", g_program, report.message.c_str());
  if (debug_backtraces_enabled()) {
    try {
      std::fprintf(stderr, "%s", c10::get_backtrace(/*frames_to_skip=*/1).c_str());
    } catch (...) {
    }
  }
  std::fflush(stderr);
  ::_exit(static_cast<int>(report.code));
}

}  // namespace

bool debug_backtraces_enabled() {
  const char* value = std::getenv(kDebugEnv);
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}

FailureReport describe_exception(std::exception_ptr exception) {
  if (!exception) return {ExitCode::kFailure, "terminate called without an active exception"};
  try {
    std::rethrow_exception(exception);
  } catch (const Error& e) {
    return {e.code(), one_line(e.what())};
  } catch (const c10::Error& e) {
    return {ExitCode::kFailure, one_line(cat("LibTorch: ", e.what_without_backtrace()))};
  } catch (const std::bad_alloc& e) {
    return {ExitCode::kFailure, cat("out of memory (", e.what(), ")")};
  } catch (const std::exception& e) {
    return {ExitCode::kFailure, one_line(e.what())};
  } catch (...) {
    return {ExitCode::kFailure, "unknown exception (not derived from std::exception)"};
  }
}

void install_terminate_guard(const char* program) {
  g_program = program;
  std::set_terminate(on_terminate);
}

int run_guarded(const char* program, const std::function<int()>& body) {
  install_terminate_guard(program);
  // Nothing caught here when debugging: terminate then runs at the throw site, so the
  // backtrace shows where the exception came from.
  if (debug_backtraces_enabled()) return body();
  try {
    return body();
  } catch (...) {
    const FailureReport report = describe_exception(std::current_exception());
    try {
      log::error(report.message);
    } catch (...) {
      std::fprintf(stderr, "%s: error: %s\n", program, report.message.c_str());
    }
    return static_cast<int>(report.code);
  }
}

}  // namespace speculators
