// SIGINT/SIGTERM while training: the first signal only raises a flag that the loop reads between
// steps (it then writes a resumable checkpoint and exits 130); a second signal ends the process
// at once with 130. Every checkpoint file is written to a temporary name and renamed, so leaving
// in the middle of a write corrupts nothing a resume would read.
#pragma once

namespace speculators {

class InterruptGuard {
 public:
  // Installs the handlers; the previous ones come back when the guard is destroyed.
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Whether a first signal has arrived, and which one (0 when none).
  static bool requested();
  static int signal_number();
};

}  // namespace speculators
