// The single-machine launcher: it starts N ranks of this same executable (here the test binary,
// running one hidden test case per rank) with the torchrun-style environment, returns the first
// failing rank's exit code, and gives the SIGINT/SIGTERM handlers back that were there before.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "speculators/error.h"
#include "speculators/log.h"
#include "tools/launcher.h"

using namespace speculators;

namespace {

const char* env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

void custom_handler(int) {}

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("speculators_launcher_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

// Run only as a rank started by the tests below: writes what the launcher gave this process.
TEST_CASE("launcher child: record the rank environment", "[.launcher_child]") {
  const std::filesystem::path dir = env_or_empty("SPECULATORS_LAUNCHER_TEST_DIR");
  REQUIRE(!dir.empty());
  std::ofstream(dir / cat("rank_", env_or_empty("RANK"))) << env_or_empty("RANK") << " " << env_or_empty("LOCAL_RANK")
                                                          << " " << env_or_empty("WORLD_SIZE") << " "
                                                          << env_or_empty("LOCAL_WORLD_SIZE") << " "
                                                          << env_or_empty("MASTER_ADDR") << " "
                                                          << env_or_empty("SPECULATORS_LAUNCHER");
}

// Run only as a rank: rank 1 fails with Catch2's exit code for one failed test case (1).
TEST_CASE("launcher child: rank 1 fails", "[.launcher_fail]") { CHECK(std::string(env_or_empty("RANK")) != "1"); }

TEST_CASE("launch_local_ranks: every rank gets its environment; the handlers come back", "[launcher]") {
  const auto dir = fresh_dir("env");
  ::setenv("SPECULATORS_LAUNCHER_TEST_DIR", dir.c_str(), 1);
  ::unsetenv("MASTER_ADDR");
  ::unsetenv("MASTER_PORT");
  struct sigaction mine {}, before_int {}, before_term {};
  mine.sa_handler = custom_handler;
  sigemptyset(&mine.sa_mask);
  sigaction(SIGINT, &mine, &before_int);
  sigaction(SIGTERM, &mine, &before_term);

  CHECK(launch_local_ranks(3, {"[launcher_child]"}, 10.0) == 0);

  struct sigaction now_int {}, now_term {};
  sigaction(SIGINT, &before_int, &now_int);
  sigaction(SIGTERM, &before_term, &now_term);
  CHECK(now_int.sa_handler == &custom_handler);
  CHECK(now_term.sa_handler == &custom_handler);
  for (int r = 0; r < 3; ++r) {
    std::ifstream in(dir / cat("rank_", r));
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str() == cat(r, " ", r, " 3 3 127.0.0.1 speculators"));
  }
}

TEST_CASE("launch_local_ranks: the first failing rank's exit code is the job's", "[launcher]") {
  CHECK(launch_local_ranks(2, {"[launcher_fail]"}, 10.0) == 1);
}

TEST_CASE("launch_local_ranks: fewer than one rank is a usage error", "[launcher]") {
  try {
    launch_local_ranks(0, {}, 1.0);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()) == "--nproc-per-node must be >= 1, got 0");
  }
}
