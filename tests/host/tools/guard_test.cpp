// The top-level guard of every main (host/src/tools/guard.h): each kind of exception, thrown on
// the main thread or on another thread, ends a child process with the documented exit code and
// exactly one line on stderr (no signal, no backtrace); SPECULATORS_DEBUG=1 adds the backtrace.
#include <catch2/catch.hpp>
#include <c10/util/Exception.h>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "speculators/error.h"
#include "tools/guard.h"

using namespace speculators;

namespace {

struct ChildEnd {
  bool exited = false;   // false: ended by a signal
  int code = -1;         // exit status when exited, signal number otherwise
  std::string err;       // what it wrote to stderr
};

// Runs run_guarded(body) in a forked child with stderr into a pipe (and the log level at its
// default), as a main would.
ChildEnd run_main_in_child(const std::function<int()>& body, bool debug = false) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    if (debug) ::setenv(kDebugEnv, "1", 1);
    else ::unsetenv(kDebugEnv);
    ::unsetenv("SPECULATORS_LOG_LEVEL");
    // noexcept: as in a real main, nothing above the guard catches (Catch2 would, here).
    const auto as_main = [&]() noexcept { return run_guarded("guard-test", body); };
    ::_exit(as_main());
  }
  ::close(fds[1]);
  ChildEnd end;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0) end.err.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  end.exited = WIFEXITED(status);
  end.code = end.exited ? WEXITSTATUS(status) : WTERMSIG(status);
  return end;
}

std::size_t lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

int throw_c10() {
  TORCH_CHECK(false, "shapes [2, 3] and [4] do not match");
  return 0;
}

}  // namespace

TEST_CASE("describe_exception maps each kind to its exit code and one line", "[guard]") {
  const auto of = [](auto thrower) {
    try {
      thrower();
    } catch (...) {
      return describe_exception(std::current_exception());
    }
    FAIL("nothing thrown");
    return FailureReport{};
  };
  FailureReport r = of([] { fail_data("data.jsonl line 3: \"input_ids\" is not a list"); });
  CHECK(r.code == ExitCode::kData);
  CHECK(r.message == "data.jsonl line 3: \"input_ids\" is not a list");
  r = of([] { throw_c10(); });
  CHECK(r.code == ExitCode::kFailure);
  CHECK(r.message == "LibTorch: shapes [2, 3] and [4] do not match");
  r = of([] { throw std::bad_alloc(); });
  CHECK(r.message == "out of memory (std::bad_alloc)");
  r = of([] { throw std::runtime_error("two\nlines"); });
  CHECK(r.message == "two lines");
  r = of([] { throw 42; });
  CHECK(r.message == "unknown exception (not derived from std::exception)");
  CHECK(describe_exception(nullptr).message == "terminate called without an active exception");
}

TEST_CASE("a main under the guard ends with the documented code and one line", "[guard]") {
  struct Case {
    std::function<int()> body;
    int code;
    std::string text;
  };
  const std::vector<Case> cases = {
      {[]() -> int { fail_usage("--epochs 0: must be at least 1"); }, 2, "--epochs 0: must be at least 1"},
      {[]() -> int { fail("plugin x rejected", ExitCode::kPlugin); }, 3, "plugin x rejected"},
      {[]() -> int { fail_data("verifier model.safetensors: tensor lm_head.weight is missing"); }, 4,
       "tensor lm_head.weight is missing"},
      {[]() -> int { return throw_c10(); }, 1, "LibTorch: shapes [2, 3] and [4] do not match"},
      {[]() -> int { throw std::bad_alloc(); }, 1, "out of memory (std::bad_alloc)"},
      {[]() -> int { throw std::logic_error("vector::_M_range_check"); }, 1, "vector::_M_range_check"},
      {[]() -> int { throw 7; }, 1, "unknown exception"},
      {[]() -> int { return 0; }, 0, ""},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    const ChildEnd end = run_main_in_child(c.body);
    REQUIRE(end.exited);
    CHECK(end.code == c.code);
    if (c.code == 0) {
      CHECK(end.err.empty());
      continue;
    }
    CHECK(lines(end.err) == 1);
    CHECK(end.err.find(c.text) != std::string::npos);
    CHECK(end.err.find("Exception raised from") == std::string::npos);
  }
}

TEST_CASE("an exception escaping another thread ends the process with its code and one line", "[guard]") {
  const auto body = []() -> int {
    std::thread worker([] { fail("rank 1 stopped answering", ExitCode::kDistributed); });
    worker.join();
    return 0;
  };
  const ChildEnd end = run_main_in_child(body);
  REQUIRE(end.exited);
  CHECK(end.code == 5);
  CHECK(end.err == "guard-test: error: rank 1 stopped answering\n");

  const ChildEnd c10_end = run_main_in_child([]() -> int {
    std::thread worker([] { throw_c10(); });
    worker.join();
    return 0;
  });
  REQUIRE(c10_end.exited);
  CHECK(c10_end.code == 1);
  CHECK(c10_end.err == "guard-test: error: LibTorch: shapes [2, 3] and [4] do not match\n");
}

TEST_CASE("SPECULATORS_DEBUG=1 prints the backtrace after the same line and exits with the same code", "[guard]") {
  const ChildEnd end = run_main_in_child([]() -> int { fail_data("bad row"); }, /*debug=*/true);
  REQUIRE(end.exited);
  CHECK(end.code == 4);
  CHECK(end.err.rfind("guard-test: error: bad row\n", 0) == 0);
  CHECK(lines(end.err) > 3);
}
