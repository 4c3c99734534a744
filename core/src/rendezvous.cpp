// The TCPStore rendezvous with heartbeats (rendezvous.h). Rank 0 hosts the store; each rank keeps
// two extra client connections of its own (one for its heartbeat thread, one opened only to
// diagnose a failure), so a thread never shares a socket with another.
#include "rendezvous.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <system_error>
#include <vector>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators::detail {

namespace {

constexpr auto kHeartbeatPeriod = std::chrono::milliseconds(500);
constexpr auto kSilence = std::chrono::milliseconds(2500);  // no beat for this long: stopped

std::string heartbeat_key(int rank) { return "speculators/heartbeat/" + std::to_string(rank); }

c10::intrusive_ptr<c10d::TCPStore> connect(const RankInfo& info, bool server, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(info.master_port);
  opts.isServer = server;
  opts.timeout = timeout;
  // The store does not wait for the world itself: the Rendezvous waits for every rank's first
  // heartbeat instead, which names the ranks that never joined. (LibTorch 2.x's TCPStore would
  // otherwise throw from its constructor, with a backtrace; 1.13's gave up silently.)
  opts.waitWorkers = false;
  return c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
}

// c10d messages carry a C++ backtrace after the first line; the first line is the cause.
std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

std::string where(const RankInfo& info) { return cat(info.master_addr, ":", info.master_port); }

// c10d's TCPStore client keeps a background thread on its socket; when the store's host (rank 0)
// goes away, that thread throws std::system_error where nothing can catch it. The terminate
// handler turns that into the same one-line error and exit code a failed collective gives (or
// into the planned exit status once the communicator is being torn down).
std::mutex g_terminate_mutex;
std::string g_store_lost_message;                 // "" until a multi-rank rendezvous exists
std::atomic<int> g_teardown_exit{-1};             // >= 0 once teardown began
std::terminate_handler g_previous_terminate = nullptr;

[[noreturn]] void on_terminate() {
  if (auto error = std::current_exception()) {
    try {
      std::rethrow_exception(error);
    } catch (const std::system_error& e) {
      std::fflush(nullptr);
      const int planned = g_teardown_exit.load();
      if (planned >= 0) std::_Exit(planned);
      std::string message;
      {
        std::lock_guard<std::mutex> lock(g_terminate_mutex);
        message = g_store_lost_message;
      }
      if (!message.empty()) {
        std::fprintf(stderr, "%s [%s]\n", message.c_str(), e.what());
        std::fflush(stderr);
        std::_Exit(static_cast<int>(ExitCode::kDistributed));
      }
    } catch (...) {
    }
  }
  if (g_previous_terminate != nullptr) g_previous_terminate();
  std::abort();
}

void install_terminate_handler(const RankInfo& info) {
  std::lock_guard<std::mutex> lock(g_terminate_mutex);
  if (g_store_lost_message.empty()) g_previous_terminate = std::set_terminate(on_terminate);
  g_store_lost_message = cat("[rank ", info.rank, "] the store connection failed on rank ", info.rank, " of ",
                             info.world_size, ": rank 0, which hosts the rendezvous store at ", where(info),
                             ", is unreachable (it exited or its machine is down)");
}

}  // namespace

Rendezvous::Rendezvous(const RankInfo& info, std::chrono::milliseconds timeout) : info_(info), timeout_(timeout) {
  if (info_.world_size > 1) {
    install_terminate_handler(info_);
    g_teardown_exit = -1;
  }
  try {
    store_ = connect(info_, info_.rank == 0, timeout_);
  } catch (const std::exception& e) {
    throw Error(cat("rank ", info_.rank, " of ", info_.world_size, ": the rendezvous at ", where(info_),
                    " did not complete within ", timeout_.count() / 1000.0, " s (",
                    info_.rank == 0 ? "waiting for the other ranks to connect"
                                    : "rank 0 must be running and reachable at MASTER_ADDR:MASTER_PORT",
                    "): ", first_line(e.what())),
                ExitCode::kDistributed);
  }
  store_->add(heartbeat_key(info_.rank), 1);
  // Every rank announces itself with its first heartbeat; wait for all of them.
  std::vector<std::string> keys;
  for (int r = 0; r < info_.world_size; ++r) keys.push_back(heartbeat_key(r));
  try {
    store_->wait(keys, timeout_);
  } catch (const std::exception& e) {
    std::string missing;
    for (int r = 0; r < info_.world_size; ++r) {
      if (!store_->check({heartbeat_key(r)})) missing += cat(missing.empty() ? "" : ", ", r);
    }
    throw Error(cat("rank ", info_.rank, " of ", info_.world_size, ": the rendezvous at ", where(info_),
                    " did not complete within ", timeout_.count() / 1000.0, " s; rank(s) ", missing,
                    " never joined (start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT)"),
                ExitCode::kDistributed);
  }
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
}

Rendezvous::~Rendezvous() {
  begin_teardown();
  stop_heartbeat();
}

void Rendezvous::begin_teardown() {
  if (g_teardown_exit.load() >= 0) return;
  g_teardown_exit = std::uncaught_exceptions() > 0 ? static_cast<int>(ExitCode::kDistributed) : 0;
}

void Rendezvous::stop_heartbeat() {
  stop_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
}

void Rendezvous::heartbeat_loop() {
  c10::intrusive_ptr<c10d::TCPStore> client;
  try {
    client = connect(info_, /*server=*/false, std::chrono::milliseconds(5000));
  } catch (const std::exception&) {
    return;  // the store is gone; a collective will notice and diagnose()
  }
  while (!stop_) {
    try {
      client->add(heartbeat_key(info_.rank), 1);
    } catch (const std::exception&) {
      return;
    }
    for (auto waited = std::chrono::milliseconds(0); waited < kHeartbeatPeriod && !stop_;
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

std::string Rendezvous::diagnose() const {
  if (info_.world_size <= 1) return "";
  const std::string rank0_gone = cat("rank 0, which hosts the rendezvous store at ", where(info_),
                                     ", is unreachable (it exited or its machine is down)");
  try {
    auto client = connect(info_, /*server=*/false, std::chrono::milliseconds(3000));
    auto read = [&] {
      std::map<int, std::int64_t> beats;
      for (int r = 0; r < info_.world_size; ++r) beats[r] = client->add(heartbeat_key(r), 0);
      return beats;
    };
    const auto before = read();
    std::this_thread::sleep_for(kSilence);
    const auto after = read();
    std::string out;
    for (int r = 0; r < info_.world_size; ++r) {
      if (r == info_.rank || after.at(r) != before.at(r)) continue;
      if (after.at(r) == 0) {
        out += cat(out.empty() ? "" : "; ", "rank ", r, " never joined");
        continue;
      }
      out += cat(out.empty() ? "" : "; ", "rank ", r, " stopped (no heartbeat for ", kSilence.count() / 1000.0,
                 " s: it died, was killed or hangs)");
    }
    return out;
  } catch (const std::exception&) {
    return info_.rank == 0 ? std::string() : rank0_gone;
  }
}

void Rendezvous::fail(const std::string& op, const std::string& cause) const {
  std::string why = diagnose();
  if (why.empty()) why = "every rank still answers: check the other ranks' logs for their own error";
  throw Error(cat(op, " failed on rank ", info_.rank, " of ", info_.world_size, ": ", why, " [", first_line(cause), "]"),
              ExitCode::kDistributed);
}

}  // namespace speculators::detail
