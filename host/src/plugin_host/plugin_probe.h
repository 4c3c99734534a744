// The out-of-process probe of a plugin (docs/plugins.md, "Probing in a child process"): before a
// plugin's code runs in the host, a forked child runs the whole loading sequence on it and
// reports the resulting record through a pipe, marking each phase (dlopen, entry point,
// registration) as it enters it. A plugin that crashes, aborts, exits or hangs in the child is
// rejected with one line naming the phase and the signal, and the host goes on. This file owns
// the child's lifetime (fork, timeout, kill, reap); PluginHost::probe_then_load decides what
// the child runs and what its answer means.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>


namespace speculators {

// SPECULATORS_PLUGIN_PROBE=0 loads plugins in process only (for a debugger).
inline constexpr const char* kPluginProbeEnv = "SPECULATORS_PLUGIN_PROBE";
// SPECULATORS_PLUGIN_PROBE_TIMEOUT: seconds a probe child may take (default 10).
inline constexpr const char* kPluginProbeTimeoutEnv = "SPECULATORS_PLUGIN_PROBE_TIMEOUT";
inline constexpr std::chrono::milliseconds kDefaultProbeTimeout{10000};

// What a probe child sent back.
struct ProbeResult {
  bool answered = false;   // the child sent its whole answer and exited with status 0
  std::string answer;      // what the child sent with send_answer(), when answered
  std::string failure;     // otherwise: "crashed in registration (signal 11)", "hung in ..."
  bool plugin_fault = false;   // the child died of a signal or exited on its own: not a hang,
                               // nor an error of the host's side of the child (exit 111)
};

// Runs `work` in a forked child with a pipe to this process. The child calls mark_phase() and
// send_answer() on the channel it is given; this process waits at most `timeout` for the child
// to finish, kills it (SIGKILL) when it does not, and always reaps it.
class ProbeChannel {
 public:
  explicit ProbeChannel(int fd) : fd_(fd) {}
  void mark_phase(const char* phase) const;
  void send_answer(const std::string& answer) const;

 private:
  int fd_;
};
ProbeResult run_in_probe_child(const std::function<void(const ProbeChannel&)>& work,
                               std::chrono::milliseconds timeout);

// The probe settings of this process: enabled unless SPECULATORS_PLUGIN_PROBE=0, and the timeout
// from SPECULATORS_PLUGIN_PROBE_TIMEOUT (an invalid value is an Error, ExitCode::kUsage).
bool probe_enabled_from_env();
std::chrono::milliseconds probe_timeout_from_env();

}  // namespace speculators
