// The one error type of the project. Every failure a user can cause (a bad job key, a malformed
// file, a plugin that does not fit) is reported as a speculators::Error whose message names the
// file, key or value at fault and what would have been valid.
#pragma once

#include <stdexcept>
#include <string>

namespace speculators {

// Exit codes shared by every executable.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,
  kUsage = 2,        // bad job file, unknown key, wrong type
  kPlugin = 3,       // a plugin could not be loaded or misbehaved
  kData = 4,         // bad data
  kDistributed = 5,  // a rank died or stopped answering, a collective failed or timed out
  kInterrupted = 130,
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

 private:
  ExitCode code_;
};

// Shorthands that read well at the throw site.
[[noreturn]] inline void fail(const std::string& message, ExitCode code = ExitCode::kFailure) {
  throw Error(message, code);
}
[[noreturn]] inline void fail_usage(const std::string& message) { throw Error(message, ExitCode::kUsage); }
[[noreturn]] inline void fail_data(const std::string& message) { throw Error(message, ExitCode::kData); }

}  // namespace speculators
