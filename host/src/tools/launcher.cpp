// The single-machine launcher (launcher.h). Each rank runs in its own process group, so a
// Ctrl-C at the terminal reaches only the launcher, which forwards it once to every rank (a
// rank that got SIGINT twice would exit without its checkpoint).
#include "tools/launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "speculators/error.h"
#include "speculators/log.h"

extern char** environ;

namespace speculators {

namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int signo) { g_signal = signo; }

// While alive, SIGINT and SIGTERM only set g_signal (the supervisor forwards them to the ranks);
// the handlers that were there before come back when it goes, also when an error unwinds.
class ForwardedSignals {
 public:
  ForwardedSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_signal = 0;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~ForwardedSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

struct Child {
  pid_t pid = -1;
  int rank = 0;
  bool done = false;
  int status = 0;
};

// The started ranks. A rank that is still running when the group goes (an error while starting
// a later rank, or while supervising) is killed and reaped, so no rank outlives the launcher.
class RankGroup {
 public:
  RankGroup() = default;
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;
  ~RankGroup() {
    for (auto& c : children_) {
      if (c.done) continue;
      ::kill(c.pid, SIGKILL);
      int status = 0;
      while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  std::vector<Child>& children() { return children_; }

 private:
  std::vector<Child> children_;
};

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    return cat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  }
  return cat("exited with code ", WEXITSTATUS(status));
}

int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return static_cast<int>(ExitCode::kDistributed);
  return WEXITSTATUS(status);
}

// This process's environment with the variables of rank `rank` set, as "KEY=value" strings.
std::vector<std::string> rank_environment(int rank, int nproc, const std::string& addr, const std::string& port) {
  const std::vector<std::pair<std::string, std::string>> set = {
      {"RANK", std::to_string(rank)},         {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(nproc)},  {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", addr},                  {"MASTER_PORT", port},
      {"SPECULATORS_LAUNCHER", "speculators"}};
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (std::none_of(set.begin(), set.end(), [&](const auto& kv) { return kv.first == key; })) env.push_back(entry);
  }
  for (const auto& [key, value] : set) env.push_back(key + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Forks and execs every rank of this same command, each in its own process group. Everything
// the child needs is prepared before fork(), so the child only calls async-signal-safe functions.
// When a fork fails, the ranks already started are killed (by `group`) and the error is thrown.
void spawn_ranks(RankGroup& group, int nproc, const std::vector<std::string>& argv, const std::string& addr,
                 const std::string& port) {
  std::vector<std::string> args = {"/proc/self/exe"};
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> cargs = pointers(args);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  const pid_t launcher_pid = ::getpid();
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env = rank_environment(r, nproc, addr, port);
    std::vector<char*> cenv = pointers(env);
    const pid_t pid = ::fork();
    if (pid < 0) fail(cat("fork failed starting rank ", r, " of ", nproc, ": ", std::strerror(errno)));
    if (pid == 0) {
      // A rank dies with its launcher (even one killed by SIGKILL, which forwards nothing).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher_pid) std::_Exit(130);  // the launcher died before prctl took effect
      ::setpgid(0, 0);
      sigaction(SIGINT, &default_action, nullptr);
      sigaction(SIGTERM, &default_action, nullptr);
      ::execve("/proc/self/exe", cargs.data(), cenv.data());
      static const char message[] = "speculators-train: a rank cannot start /proc/self/exe\n";
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, message, sizeof(message) - 1);
      std::_Exit(127);
    }
    group.children().push_back(Child{pid, r, false, 0});
  }
}

// Waits for every rank, forwarding SIGINT/SIGTERM to them. When one fails, the others get
// `grace_seconds` to stop, then SIGTERM, then 5 s later SIGKILL. Returns the job's exit code.
int supervise(std::vector<Child>& children, double grace_seconds) {
  int first_failure = -1;
  std::chrono::steady_clock::time_point deadline{};
  bool terminated = false;
  std::size_t running = children.size();
  while (running > 0) {
    if (g_signal != 0) {
      const int signo = g_signal;
      g_signal = 0;
      for (auto& c : children) {
        if (!c.done) ::kill(c.pid, signo);
      }
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (auto& c : children) {
        if (c.pid != pid) continue;
        c.done = true;
        c.status = status;
        --running;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && first_failure < 0) {
          first_failure = c.rank;
          const bool interrupted = WIFEXITED(status) && WEXITSTATUS(status) == static_cast<int>(ExitCode::kInterrupted);
          if (!interrupted) {
            log::error(cat("rank ", c.rank, " (pid ", pid, ") ", describe_exit(status), "; waiting up to ",
                           grace_seconds, " s for the other ranks to stop"));
          }
          deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<std::int64_t>(grace_seconds * 1000));
        }
      }
      continue;
    }
    if (first_failure >= 0 && std::chrono::steady_clock::now() > deadline) {
      for (auto& c : children) {
        if (c.done) continue;
        log::error(cat("rank ", c.rank, " (pid ", c.pid, ") did not stop within ", grace_seconds, " s; ",
                       terminated ? "killing" : "terminating", " it"));
        ::kill(c.pid, terminated ? SIGKILL : SIGTERM);
      }
      terminated = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (first_failure < 0) return 0;
  return exit_code_of(children[static_cast<std::size_t>(first_failure)].status);
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail(cat("cannot open a socket to find a free port: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    fail(cat("cannot bind a socket on 127.0.0.1 to find a free port: ", std::strerror(errno)));
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

int launch_local_ranks(int nproc, const std::vector<std::string>& argv, double grace_seconds) {
  if (nproc < 1) fail_usage(cat("--nproc-per-node must be >= 1, got ", nproc));
  const char* addr_env = std::getenv("MASTER_ADDR");
  const char* port_env = std::getenv("MASTER_PORT");
  const std::string addr = addr_env != nullptr && *addr_env != '\0' ? addr_env : "127.0.0.1";
  const std::string port = port_env != nullptr && *port_env != '\0' ? port_env : std::to_string(free_local_port());
  log::info(cat("starting ", nproc, " ranks on this machine (rendezvous ", addr, ":", port, ")"));
  const ForwardedSignals signals;
  RankGroup group;
  spawn_ranks(group, nproc, argv, addr, port);
  return supervise(group.children(), grace_seconds);
}

}  // namespace speculators
