// The out-of-process plugin probe (see plugin_probe.h): a forked child runs the loading sequence
// and answers through a pipe; this process reads with a deadline, kills a child that does not
// finish and turns every way a child can end into one line. What the child runs and how its
// answer is used is PluginHost::probe_then_load (plugin_loader.cpp).
#include "plugin_host/plugin_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

constexpr const char* kPhasePrefix = "phase ";
// The child's exit code when the host's own part of the work threw.
constexpr int kHostFailureExit = 111;
constexpr const char* kAnswerPrefix = "answer\n";

void write_all(int fd, const std::string& text) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

// The child: default dispositions for the signals a crash raises (the host may have its own
// handlers), no core dump (a crashing plugin would otherwise write the host's whole address
// space), then the work and _exit without running the host's atexit handlers.
[[noreturn]] void child_main(int fd, const std::function<void(const ProbeChannel&)>& work) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGPIPE}) ::signal(sig, SIG_DFL);
  // No core file: RLIMIT_CORE does not stop a core_pattern pipe, a non-dumpable process does.
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  try {
    work(ProbeChannel(fd));
  } catch (...) {
    ::_exit(kHostFailureExit);
  }
  ::close(fd);
  ::_exit(0);
}

// The last phase the child announced, "loading" before the first.
std::string last_phase(const std::string& text) {
  std::string phase = "loading";
  std::istringstream lines(text);
  std::string line;
  const std::string prefix = kPhasePrefix;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) phase = line.substr(prefix.size());
    if (line == "answer") break;
  }
  return phase;
}

// Reads until end of file or the deadline; returns false on timeout.
bool read_until_eof(int fd, std::string& text, std::chrono::steady_clock::time_point deadline) {
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd pfd = {fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

// Waits for the child until the deadline; kills it after that. Returns its wait status, or
// nullopt when it had to be killed.
std::optional<int> reap(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return 0;  // already reaped elsewhere: nothing to report
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::nullopt;
}

std::string seconds_text(std::chrono::milliseconds timeout) {
  std::ostringstream out;
  out << static_cast<double>(timeout.count()) / 1000.0;
  return out.str();
}

}  // namespace

void ProbeChannel::mark_phase(const char* phase) const { write_all(fd_, cat(kPhasePrefix, phase, "\n")); }

void ProbeChannel::send_answer(const std::string& answer) const { write_all(fd_, kAnswerPrefix + answer); }

ProbeResult run_in_probe_child(const std::function<void(const ProbeChannel&)>& work,
                               std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail(cat("plugin probe: pipe failed: ", std::strerror(errno)), ExitCode::kPlugin);
  std::fflush(nullptr);  // what this process buffered must not be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    fail(cat("plugin probe: fork failed: ", std::strerror(err)), ExitCode::kPlugin);
  }
  if (pid == 0) {
    ::close(fds[0]);
    child_main(fds[1], work);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  const bool eof = read_until_eof(fds[0], text, deadline);
  ::close(fds[0]);
  const std::optional<int> status = reap(pid, eof ? deadline : std::chrono::steady_clock::now());

  ProbeResult result;
  const std::string phase = last_phase(text);
  const std::size_t answer_at = text.find(kAnswerPrefix);
  if (!status) {
    result.failure = cat("hung in ", phase, " (no answer within ", seconds_text(timeout), " s; killed)");
  } else if (WIFSIGNALED(*status)) {
    result.failure = cat("crashed in ", phase, " (signal ", WTERMSIG(*status), ")");
    result.plugin_fault = true;
  } else if (WIFEXITED(*status) && WEXITSTATUS(*status) != 0) {
    result.failure = cat("exited with code ", WEXITSTATUS(*status), " in ", phase);
    result.plugin_fault = WEXITSTATUS(*status) != kHostFailureExit;
  } else if (answer_at == std::string::npos) {
    result.failure = cat("ended in ", phase, " without an answer");
  } else {
    result.answered = true;
    result.answer = text.substr(answer_at + std::strlen(kAnswerPrefix));
  }
  return result;
}

bool probe_enabled_from_env() {
  const char* value = std::getenv(kPluginProbeEnv);
  return value == nullptr || std::string(value) != "0";
}

std::chrono::milliseconds probe_timeout_from_env() {
  const char* value = std::getenv(kPluginProbeTimeoutEnv);
  if (value == nullptr || *value == '\0') return kDefaultProbeTimeout;
  char* end = nullptr;
  const double seconds = std::strtod(value, &end);
  if (end == value || *end != '\0' || !(seconds > 0) || seconds > 3600) {
    fail_usage(cat(kPluginProbeTimeoutEnv, "=", value, ": expected seconds in (0, 3600]"));
  }
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0 + 0.5));
}

}  // namespace speculators
