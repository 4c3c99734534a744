// A logger facade. The implementation (spdlog) stays private to core so that a plugin needs only
// this header; messages are plain strings, built with speculators::cat() or std::to_string.
#pragma once

#include <sstream>
#include <string>
#include <utility>

namespace speculators {
namespace log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_level(Level level);
Level level();
// Prefixes every line with "[rank N] " when the process is one rank of several.
void set_rank(int rank, int world_size);

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace log

// cat("a=", 1, " b=", 2.5) -> "a=1 b=2.5": a tiny formatter for log and error messages.
template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

}  // namespace speculators
