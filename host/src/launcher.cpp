// The single-machine launcher (launcher.h). Each rank runs in its own process group, so a
// Ctrl-C at the terminal reaches only the launcher, which forwards it once to every rank (a
// rank that got SIGINT twice would exit without its checkpoint).
#include "launcher.h"

#include <arpa/inet.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int signo) { g_signal = signo; }

struct Child {
  pid_t pid = -1;
  int rank = 0;
  bool done = false;
  int status = 0;
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

  std::vector<std::string> args = {"/proc/self/exe"};
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  std::vector<Child> children(static_cast<std::size_t>(nproc));
  const pid_t launcher_pid = ::getpid();
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) fail(cat("fork failed starting rank ", r, ": ", std::strerror(errno)));
    if (pid == 0) {
      // A rank dies with its launcher (even one killed by SIGKILL, which forwards nothing).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher_pid) std::_Exit(130);  // the launcher died before prctl took effect
      ::setpgid(0, 0);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      ::setenv("SPECULATORS_LAUNCHER", "speculators", 1);
      ::execv("/proc/self/exe", cargs.data());
      std::fprintf(stderr, "rank %d: cannot start /proc/self/exe: %s\n", r, std::strerror(errno));
      std::_Exit(127);
    }
    children[static_cast<std::size_t>(r)].pid = pid;
    children[static_cast<std::size_t>(r)].rank = r;
  }

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
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (first_failure < 0) return 0;
  return exit_code_of(children[static_cast<std::size_t>(first_failure)].status);
}

}  // namespace speculators
