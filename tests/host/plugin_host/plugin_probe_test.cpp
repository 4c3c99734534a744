// The out-of-process probe (host/src/plugin_host/plugin_probe.h): fixtures whose register
// function segfaults, aborts or never returns are rejected with the phase and the signal while
// the good plugins beside them load, in bounded time; the probe's own pieces (child exit codes,
// phases, the record's text form, the timeout variable) are checked against values set here.
#include <catch2/catch.hpp>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_host/plugin_probe.h"
#include "plugin_test_util.h"
#include "speculators/error.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TEST_CASE("a plugin that crashes, aborts or hangs in registration is rejected with the signal", "[plugins][probe]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {SPECULATORS_FIXTURE_REG_SEGFAULT, "crashed in registration (signal " + std::to_string(SIGSEGV) + ")"},
      {SPECULATORS_FIXTURE_REG_ABORT, "crashed in registration (signal " + std::to_string(SIGABRT) + ")"},
      {SPECULATORS_FIXTURE_REG_HANG, "hung in registration (no answer within 1.5 s; killed)"},
  };
  for (const auto& [path, expected] : cases) {
    INFO(path);
    Registry registry;
    PluginHost plugins(registry, test::this_host());
    plugins.set_probe_timeout(std::chrono::milliseconds(1500));
    const auto start = Clock::now();
    const PluginRecord record = plugins.load(path);
    CHECK(seconds_since(start) < 6.0);
    CHECK_FALSE(record.ok);
    CHECK(record.status == PluginStatus::kRejected);
    CHECK(record.reason == expected);
    CHECK(registry.names().empty());
    CHECK(format_plugin_list(plugins.records()).find("rejected: " + expected) != std::string::npos);
  }
}

TEST_CASE("good plugins load beside crashing, aborting and hanging ones", "[plugins][probe]") {
  test::TempDir dir("probe_mix");
  const std::string plugins_dir = dir.dir("plugins");
  for (const char* path : {SPECULATORS_FIXTURE_GOOD_A, SPECULATORS_FIXTURE_GOOD_B, SPECULATORS_FIXTURE_REG_SEGFAULT,
                           SPECULATORS_FIXTURE_REG_ABORT, SPECULATORS_FIXTURE_REG_HANG}) {
    fs::copy_file(path, fs::path(plugins_dir) / fs::path(path).filename());
  }
  Registry registry;
  PluginHost plugins(registry, test::this_host());
  plugins.set_probe_timeout(std::chrono::seconds(2));
  const auto start = Clock::now();
  plugins.load_all(discover_plugins({PluginDir{plugins_dir, "test"}}));
  CHECK(seconds_since(start) < 8.0);
  std::map<std::string, std::string> status;
  for (const auto& record : plugins.records()) status[record.name] = record.ok ? "ok" : record.reason;
  const std::map<std::string, std::string> expected = {
      {"good_a", "ok"},
      {"good_b", "ok"},
      {"reg_abort", "crashed in registration (signal " + std::to_string(SIGABRT) + ")"},
      {"reg_hang", "hung in registration (no answer within 2 s; killed)"},
      {"reg_segfault", "crashed in registration (signal " + std::to_string(SIGSEGV) + ")"},
  };
  CHECK(status == expected);
  CHECK(registry.names() == std::vector<std::string>({"good_a", "good_b", "good_b_extra"}));
  // The good plugins' algorithms were registered here, not only in the child.
  CHECK(registry.get("good_b_extra").plugin == "good_b");
}

TEST_CASE("a descriptor rejection reads the same with and without the probe", "[plugins][probe]") {
  for (const char* path : {SPECULATORS_FIXTURE_BAD_ABI_MAJOR, SPECULATORS_FIXTURE_REG_FAILS, SPECULATORS_FIXTURE_GARBAGE}) {
    INFO(path);
    Registry in_child_registry, in_process_registry;
    PluginHost in_child(in_child_registry, test::this_host());
    PluginHost in_process(in_process_registry, test::this_host());
    in_process.set_probe(false);
    const PluginRecord a = in_child.load(path);
    const PluginRecord b = in_process.load(path);
    CHECK_FALSE(a.ok);
    CHECK_FALSE(b.ok);
    CHECK_FALSE(a.reason.empty());
    CHECK(a.reason == b.reason);
    CHECK(a.version == b.version);
    CHECK(a.fingerprint.abi_major == b.fingerprint.abi_major);
  }
}

TEST_CASE("a probe child reports its phase, exit code and answer", "[probe]") {
  const auto timeout = std::chrono::seconds(5);
  ProbeResult exited = run_in_probe_child(
      [](const ProbeChannel& channel) {
        channel.mark_phase("entry point");
        ::_exit(7);
      },
      timeout);
  CHECK_FALSE(exited.answered);
  CHECK(exited.failure == "exited with code 7 in entry point");

  ProbeResult silent = run_in_probe_child([](const ProbeChannel&) {}, timeout);
  CHECK_FALSE(silent.answered);
  CHECK(silent.failure == "ended in loading without an answer");

  ProbeResult killed = run_in_probe_child([](const ProbeChannel&) { ::raise(SIGKILL); }, timeout);
  CHECK(killed.failure == "crashed in loading (signal 9)");

  ProbeResult answered = run_in_probe_child(
      [](const ProbeChannel& channel) {
        channel.mark_phase("dlopen");
        channel.send_answer("a\tb\n");
      },
      timeout);
  CHECK(answered.answered);
  CHECK(answered.answer == "a\tb\n");
}

TEST_CASE("a record survives its text form", "[probe]") {
  PluginRecord record;
  record.ok = false;
  record.name = "x";
  record.version = "1.2.3";
  record.reason = "two\nlines";
  record.has_descriptor = true;
  record.struct_size = 88;
  record.fingerprint.abi_major = 2;
  record.fingerprint.abi_minor = 1;
  record.fingerprint.torch_major = 1;
  record.fingerprint.torch_minor = 13;
  record.fingerprint.cxx11_abi = 1;
  record.fingerprint.cuda = 1;
  record.build_info = "gcc 12";
  record.algorithms = {"a", "b"};
  const PluginRecord back = parse_plugin_record(serialize_plugin_record(record));
  CHECK(back.name == "x");
  CHECK(back.version == "1.2.3");
  CHECK(back.reason == "two lines");
  CHECK(back.has_descriptor);
  CHECK(back.struct_size == 88);
  CHECK((back.fingerprint.abi_major == 2 && back.fingerprint.abi_minor == 1 && back.fingerprint.torch_major == 1 && back.fingerprint.torch_minor == 13));
  CHECK((back.fingerprint.cxx11_abi == 1 && back.fingerprint.cuda == 1));
  CHECK(back.build_info == "gcc 12");
  CHECK(back.algorithms == std::vector<std::string>({"a", "b"}));
}

TEST_CASE("SPECULATORS_PLUGIN_PROBE_TIMEOUT is seconds in (0, 3600]", "[probe]") {
  ::setenv(kPluginProbeTimeoutEnv, "0.25", 1);
  CHECK(probe_timeout_from_env() == std::chrono::milliseconds(250));
  for (const char* bad : {"0", "-1", "abc", "1e9", "2s"}) {
    INFO(bad);
    ::setenv(kPluginProbeTimeoutEnv, bad, 1);
    try {
      probe_timeout_from_env();
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kUsage);
      CHECK(std::string(e.what()) ==
            std::string(kPluginProbeTimeoutEnv) + "=" + bad + ": expected seconds in (0, 3600]");
    }
  }
  ::unsetenv(kPluginProbeTimeoutEnv);
  CHECK(probe_timeout_from_env() == kDefaultProbeTimeout);
}
