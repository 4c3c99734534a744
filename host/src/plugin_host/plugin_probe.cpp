// The out-of-process plugin probe (see plugin_probe.h): a forked child runs the loading sequence
// and answers through a pipe; this process reads with a deadline, kills a child that does not
// finish and turns every way a child can end into one line. PluginHost::probe_then_load, the
// step that decides from the child's answer whether the plugin is loaded here, lives here too.
#include "plugin_host/plugin_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
// handlers), no core file, then the work and _exit without running the host's atexit handlers.
[[noreturn]] void child_main(int fd, const std::function<void(const ProbeChannel&)>& work) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGPIPE}) ::signal(sig, SIG_DFL);
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  try {
    work(ProbeChannel(fd));
  } catch (...) {
    ::_exit(111);
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
  } else if (WIFEXITED(*status) && WEXITSTATUS(*status) != 0) {
    result.failure = cat("exited with code ", WEXITSTATUS(*status), " in ", phase);
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

namespace {

std::string flat(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::uint32_t to_u32(const std::string& text) { return static_cast<std::uint32_t>(std::strtoul(text.c_str(), nullptr, 10)); }

}  // namespace

std::string serialize_plugin_record(const PluginRecord& r) {
  std::ostringstream out;
  out << "ok\t" << (r.ok ? 1 : 0) << "\nname\t" << flat(r.name) << "\nversion\t" << flat(r.version)
      << "\nreason\t" << flat(r.reason) << "\nmanifest\t" << flat(r.manifest_path)
      << "\nhas_descriptor\t" << (r.has_descriptor ? 1 : 0) << "\nstruct_size\t" << r.struct_size
      << "\nabi\t" << r.abi_major << "." << r.abi_minor << "\ntorch\t" << r.torch_major << "." << r.torch_minor
      << "\ncxx11\t" << r.cxx11_abi << "\ncuda\t" << r.cuda << "\nbuild_info\t" << flat(r.build_info) << "\n";
  for (const auto& name : r.algorithms) out << "algorithm\t" << flat(name) << "\n";
  return out.str();
}

PluginRecord parse_plugin_record(const std::string& text) {
  PluginRecord r;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const std::size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const std::string key = line.substr(0, tab), value = line.substr(tab + 1);
    const std::size_t dot = value.find('.');
    const std::string first = value.substr(0, dot);
    const std::string second = dot == std::string::npos ? "" : value.substr(dot + 1);
    if (key == "ok") r.ok = value == "1";
    else if (key == "name") r.name = value;
    else if (key == "version") r.version = value;
    else if (key == "reason") r.reason = value;
    else if (key == "manifest") r.manifest_path = value;
    else if (key == "has_descriptor") r.has_descriptor = value == "1";
    else if (key == "struct_size") r.struct_size = to_u32(value);
    else if (key == "abi") r.abi_major = to_u32(first), r.abi_minor = to_u32(second);
    else if (key == "torch") r.torch_major = to_u32(first), r.torch_minor = to_u32(second);
    else if (key == "cxx11") r.cxx11_abi = to_u32(value);
    else if (key == "cuda") r.cuda = to_u32(value);
    else if (key == "build_info") r.build_info = value;
    else if (key == "algorithm") r.algorithms.push_back(value);
  }
  return r;
}

bool PluginHost::probe_then_load(const std::string& path, PluginRecord& record) {
  // The child runs the same sequence against its copy of this host's registry, so its answer
  // is what loading here would give, without any of the plugin's code running here.
  const ProbeResult probe = run_in_probe_child(
      [&](const ProbeChannel& channel) {
        probe_channel_ = &channel;
        PluginRecord child = record;
        child.ok = load_checked(path, child);
        channel.send_answer(serialize_plugin_record(child));
      },
      probe_timeout_);
  if (!probe.answered) {
    record.reason = probe.failure;
    return false;
  }
  PluginRecord answer = parse_plugin_record(probe.answer);
  if (!answer.ok) {
    answer.path = record.path;
    record = answer;
    return false;
  }
  return load_checked(path, record);
}

}  // namespace speculators
