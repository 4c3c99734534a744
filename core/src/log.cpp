// The logger facade of speculators/log.h, on spdlog (private to core). Lines go to stderr so
// that stdout stays clean for machine-readable output (--dump-config, --json).
#include "speculators/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace speculators {
namespace log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::string g_prefix;
std::mutex g_mutex;

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("speculators");
    l->set_pattern("%^[%H:%M:%S %L]%$ %v");
    l->set_level(spdlog::level::trace);
    if (const char* env = std::getenv("SPECULATORS_LOG_LEVEL")) {
      std::string v(env);
      if (v == "debug") g_level = Level::kDebug;
      if (v == "warn") g_level = Level::kWarn;
      if (v == "error") g_level = Level::kError;
      if (v == "off") g_level = Level::kOff;
    }
    return l;
  }();
  return instance;
}

void emit(Level at, spdlog::level::level_enum spd, const std::string& message) {
  auto l = logger();
  if (at < g_level.load()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  l->log(spd, "{}{}", g_prefix, message);
}

}  // namespace

void set_level(Level level) { logger(); g_level = level; }
Level level() { logger(); return g_level.load(); }

void set_rank(int rank, int world_size) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_prefix = world_size > 1 ? "[rank " + std::to_string(rank) + "] " : "";
}

void debug(const std::string& message) { emit(Level::kDebug, spdlog::level::debug, message); }
void info(const std::string& message) { emit(Level::kInfo, spdlog::level::info, message); }
void warn(const std::string& message) { emit(Level::kWarn, spdlog::level::warn, message); }
void error(const std::string& message) { emit(Level::kError, spdlog::level::err, message); }

}  // namespace log
}  // namespace speculators
