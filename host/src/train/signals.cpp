// The interrupt flag and its handlers (see signals.h). Only async-signal-safe calls happen inside
// the handler: a store to a sig_atomic_t, write(2) and _exit(2).
#include "train/signals.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace speculators {

namespace {

volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int, g_old_term;

void on_signal(int signo) {
  if (g_signal != 0) {
    static const char msg[] = "\nsecond interrupt: exiting now (the last complete checkpoint is intact)\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    ::_exit(130);
  }
  g_signal = signo;
  static const char msg[] = "\ninterrupt: finishing the current step, then writing a checkpoint "
                            "(interrupt again to exit at once)\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)ignored;
}

}  // namespace

InterruptGuard::InterruptGuard() {
  g_signal = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a read or write in progress continues rather than failing
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

bool InterruptGuard::requested() { return g_signal != 0; }
int InterruptGuard::signal_number() { return static_cast<int>(g_signal); }

}  // namespace speculators
