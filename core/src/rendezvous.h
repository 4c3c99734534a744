// The rendezvous every multi-process backend shares (private to core): rank 0 hosts a c10d
// TCPStore, every rank connects to it, and a background thread bumps this rank's heartbeat
// counter in the store. When a collective fails or times out, fail() looks at the counters to
// say which rank stopped (or that rank 0, the store's host, is gone) and throws
// Error(ExitCode::kDistributed) with that in the message.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "speculators/communicator.h"

namespace speculators::detail {

class Rendezvous {
 public:
  // Blocks until all world_size ranks have connected, or `timeout` (then throws kDistributed).
  Rendezvous(const RankInfo& info, std::chrono::milliseconds timeout);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // The shared store (keys under "speculators/" are the rendezvous's own).
  const c10::intrusive_ptr<c10d::Store>& store() const { return store_; }
  const RankInfo& info() const { return info_; }
  // Throws Error(kDistributed): "<op> failed on rank R: <cause>; <diagnosis>".
  [[noreturn]] void fail(const std::string& op, const std::string& cause) const;
  // Which ranks look dead, in words ("rank 1 stopped (no heartbeat for 3 s)", "rank 0, which
  // hosts the rendezvous store at ADDR:PORT, is unreachable"), or "" when all look alive.
  std::string diagnose() const;
  // Stops this rank's heartbeat (at a clean shutdown, before the peers may go away).
  void stop_heartbeat();
  // Called first in a communicator's destructor: from here on the store's host may close the
  // store, and the store client's own background thread may then fail. The process then exits
  // with 0, or with ExitCode::kDistributed when the communicator is destroyed by an exception.
  void begin_teardown();

 private:
  void heartbeat_loop();
  RankInfo info_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
};

}  // namespace speculators::detail
