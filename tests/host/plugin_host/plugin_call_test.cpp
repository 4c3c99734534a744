// call_plugin (plugin_host/plugin_call.h): whatever plugin code throws becomes one line naming the
// algorithm and the phase, exit code 3, without LibTorch's backtrace.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <vector>

#include "plugin_host/plugin_call.h"

using namespace speculators;

namespace {
template <typename Fn>
Error caught(Fn&& fn) {
  try {
    call_plugin("algo", "forward", fn);
  } catch (const Error& e) {
    return e;
  }
  FAIL("nothing was thrown");
  return Error("");
}
}  // namespace

TEST_CASE("call_plugin names the algorithm and the phase of every kind of exception", "[plugin_call]") {
  CHECK(call_plugin("algo", "forward", [] { return 7; }) == 7);

  Error e = caught([] { throw std::runtime_error("boom"); });
  CHECK(std::string(e.what()) == "algorithm algo (forward): boom");
  CHECK(e.code() == ExitCode::kPlugin);

  // LibTorch's own error: its message without the backtrace, on one line.
  e = caught([] { (void)torch::cat(std::vector<torch::Tensor>{}, 0); });
  const std::string what = e.what();
  CHECK(what.rfind("algorithm algo (forward): LibTorch: ", 0) == 0);
  CHECK(what.find('\n') == std::string::npos);
  CHECK(what.find("Exception raised from") == std::string::npos);
  CHECK(e.code() == ExitCode::kPlugin);

  e = caught([] { throw 42; });
  CHECK(std::string(e.what()) == "algorithm algo (forward): a non-standard exception");

  // The plugin's own usage error keeps its exit code; a host check's "algorithm X:" is not repeated.
  e = caught([] { fail_usage("bad --x 3"); });
  CHECK(std::string(e.what()) == "algorithm algo (forward): bad --x 3");
  CHECK(e.code() == ExitCode::kUsage);
  e = caught([] { fail("algorithm algo: forward returned no loss"); });
  CHECK(std::string(e.what()) == "algorithm algo (forward): forward returned no loss");
  CHECK(e.code() == ExitCode::kPlugin);

  // Nested calls keep the innermost phase.
  try {
    call_plugin("algo", "build", [] { call_plugin("algo", "load", [] { throw std::runtime_error("x"); }); });
    FAIL("nothing was thrown");
  } catch (const Error& inner) {
    CHECK(std::string(inner.what()) == "algorithm algo (load): x");
  }
}

TEST_CASE("call_plugin reports an allocation failure as out of memory, exit 1", "[plugin_call]") {
  // A real failed allocation: LibTorch's CPU allocator refuses 2^62 bytes.
  Error e = caught([] { (void)torch::empty({std::int64_t{1} << 60}, torch::kFloat); });
  std::string what = e.what();
  CHECK(what.rfind(std::string("algorithm algo (forward): ") + kOutOfMemory + "LibTorch: ", 0) == 0);
  CHECK(what.find('\n') == std::string::npos);
  CHECK(e.code() == ExitCode::kFailure);

  e = caught([] { throw std::bad_alloc(); });
  CHECK(std::string(e.what()) == std::string("algorithm algo (forward): ") + kOutOfMemory + "std::bad_alloc");
  CHECK(e.code() == ExitCode::kFailure);
}
