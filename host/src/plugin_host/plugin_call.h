// Every call from the host into plugin code goes through call_plugin: whatever the plugin throws
// (speculators::Error, c10::Error, any std::exception, anything else) comes back as one
// speculators::Error line naming the algorithm and the phase ("forward", "build", "save", ...),
// exit code 3 (a plugin misbehaved). An Error the plugin raised with another exit code keeps it
// (a plugin's own usage or data error stays exit 2 or 4). Running out of memory is not the
// plugin's fault: it reads "out of memory: ..." with exit code 1 (kFailure), so that the caller can
// say what sized the allocation. LibTorch's backtrace is dropped.
#pragma once

#include <c10/util/Exception.h>

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace plugin_call_detail {
// Keeps the first line of a message: LibTorch appends a multi-line backtrace.
inline std::string first_line(const std::string& text) {
  std::string out = text.substr(0, text.find('\n'));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\r')) out.pop_back();
  return out;
}
inline std::string prefix(const std::string& algorithm, const char* phase) {
  return cat("algorithm ", algorithm, " (", phase, "): ");
}
// LibTorch's allocators say so in their message: "DefaultCPUAllocator: can't allocate memory",
// "DefaultCPUAllocator: not enough memory", "CUDA out of memory".
inline bool is_out_of_memory(const std::string& message) {
  for (const char* marker : {"can't allocate memory", "not enough memory", "out of memory"}) {
    if (message.find(marker) != std::string::npos) return true;
  }
  return false;
}
}  // namespace plugin_call_detail

// The marker call_plugin puts after the phase when an allocation failed.
inline constexpr const char* kOutOfMemory = "out of memory: ";

template <typename Fn>
decltype(auto) call_plugin(const std::string& algorithm, const char* phase, Fn&& fn) {
  using plugin_call_detail::first_line;
  using plugin_call_detail::prefix;
  try {
    return std::forward<Fn>(fn)();
  } catch (const Error& e) {
    std::string what = e.what();
    // Already attributed to a phase (a nested call_plugin): as it is.
    if (what.rfind("algorithm " + algorithm + " (", 0) == 0) throw;
    // Named by a host check ("algorithm X: ..."): the phase goes where the name was.
    const std::string named = "algorithm " + algorithm + ": ";
    if (what.rfind(named, 0) == 0) what.erase(0, named.size());
    const ExitCode code = e.code() == ExitCode::kFailure ? ExitCode::kPlugin : e.code();
    throw Error(prefix(algorithm, phase) + first_line(what), code);
  } catch (const c10::Error& e) {
    const std::string what = first_line(e.what_without_backtrace());
    if (plugin_call_detail::is_out_of_memory(what)) {
      throw Error(prefix(algorithm, phase) + kOutOfMemory + "LibTorch: " + what, ExitCode::kFailure);
    }
    throw Error(prefix(algorithm, phase) + "LibTorch: " + what, ExitCode::kPlugin);
  } catch (const std::bad_alloc& e) {
    throw Error(prefix(algorithm, phase) + kOutOfMemory + e.what(), ExitCode::kFailure);
  } catch (const std::exception& e) {
    throw Error(prefix(algorithm, phase) + first_line(e.what()), ExitCode::kPlugin);
  } catch (...) {
    throw Error(prefix(algorithm, phase) + "a non-standard exception", ExitCode::kPlugin);
  }
}

}  // namespace speculators
