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
#include <stdexcept>

#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_host/plugin_probe.h"
#include "plugin_host/probe_cache.h"
#include "speculators/json.h"
#include "plugin_test_util.h"
#include "speculators/error.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The outcome of each entry of a probe cache file, by file name.
std::map<std::string, std::string> cached_outcomes(const std::string& cache) {
  std::map<std::string, std::string> out;
  const Json file = Json::read_file(cache);
  CHECK(file.at("format").as_string() == "speculators-plugin-probe-cache");
  for (const auto& [path, entry] : file.at("entries").as_object()) {
    out[fs::path(path).filename().string()] = entry.at("outcome").as_string();
  }
  return out;
}

// Rewrites the cache entry of `name`: outcome `outcome` and, when `field` is not empty, `field`
// set to a value no probe would record.
void edit_cache_entry(const std::string& cache, const std::string& name, const std::string& outcome,
                      const std::string& field) {
  Json file = Json::read_file(cache);
  for (auto& [path, entry] : file["entries"].as_object()) {
    if (fs::path(path).filename() != name) continue;
    entry["outcome"] = outcome;
    if (field == "size" || field == "mtime_ns") entry[field] = entry.at(field).as_int() + 1;
    if (field == "sha256") entry[field] = std::string(64, '0');
    if (field == "host") entry[field] = entry.at(field).as_string() + " other";
  }
  write_file_atomic(cache, file.dump_python());
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

  CHECK(exited.plugin_fault);

  ProbeResult silent = run_in_probe_child([](const ProbeChannel&) {}, timeout);
  CHECK_FALSE(silent.answered);
  CHECK(silent.failure == "ended in loading without an answer");
  CHECK_FALSE(silent.plugin_fault);

  ProbeResult killed = run_in_probe_child([](const ProbeChannel&) { ::raise(SIGKILL); }, timeout);
  CHECK(killed.failure == "crashed in loading (signal 9)");
  CHECK(killed.plugin_fault);

  // The host's side of the child threw: exit 111, not held against the plugin.
  ProbeResult threw = run_in_probe_child([](const ProbeChannel&) { throw std::runtime_error("host side"); }, timeout);
  CHECK(threw.failure == "exited with code 111 in loading");
  CHECK_FALSE(threw.plugin_fault);

  ProbeResult hung = run_in_probe_child([](const ProbeChannel&) { ::pause(); }, std::chrono::milliseconds(300));
  CHECK(hung.failure == "hung in loading (no answer within 0.3 s; killed)");
  CHECK_FALSE(hung.plugin_fault);

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

TEST_CASE("probe results are kept by path, size, mtime, sha256 and host, and only for the plugin's own faults",
          "[plugins][probe]") {
  test::TempDir dir("probe_cache");
  const std::string plugins_dir = dir.dir("plugins");
  for (const char* path : {SPECULATORS_FIXTURE_GOOD_A, SPECULATORS_FIXTURE_REG_SEGFAULT, SPECULATORS_FIXTURE_REG_HANG,
                           SPECULATORS_FIXTURE_REG_FAILS}) {
    fs::copy_file(path, fs::path(plugins_dir) / fs::path(path).filename());
  }
  const std::string cache = (dir.path() / "cache" / "plugin-probes.json").string();
  const auto load_one = [&](const std::string& name) {
    Registry registry;
    PluginHost plugins(registry, test::this_host());
    plugins.set_probe_cache(cache);
    plugins.set_probe_timeout(std::chrono::milliseconds(1000));
    return plugins.load(plugins_dir + "/" + name + ".so");
  };
  const std::string segfault = "crashed in registration (signal " + std::to_string(SIGSEGV) + ")";

  // First run: every plugin is probed; a registration and a crash are kept, a hang and a
  // rejection by a check are not.
  CHECK(load_one("good_a").ok);
  CHECK(load_one("reg_segfault").reason == segfault);
  CHECK(load_one("reg_hang").reason == "hung in registration (no answer within 1 s; killed)");
  CHECK_FALSE(load_one("reg_fails").ok);
  CHECK(cached_outcomes(cache) == std::map<std::string, std::string>({{"good_a.so", "ok"}, {"reg_segfault.so", segfault}}));

  // A kept outcome is used as it is, without a child: an edited one is what the host reports.
  edit_cache_entry(cache, "reg_segfault.so", "crashed in registration (signal 99)", "");
  CHECK(load_one("reg_segfault").reason == "crashed in registration (signal 99)");
  edit_cache_entry(cache, "good_a.so", "crashed in registration (signal 98)", "");
  CHECK(load_one("good_a").reason == "crashed in registration (signal 98)");

  // Any change to the file's size, mtime or sha256, or another host, probes it again.
  for (const char* field : {"size", "mtime_ns", "sha256", "host"}) {
    INFO(field);
    edit_cache_entry(cache, "good_a.so", "crashed in registration (signal 98)", field);
    const PluginRecord record = load_one("good_a");
    CHECK(record.ok);
    CHECK(cached_outcomes(cache).at("good_a.so") == "ok");
  }

  // A damaged cache is ignored (one warning) and rewritten by the next probe.
  for (const std::string& damaged : std::vector<std::string>{"{not json", std::string(100000, '[') + std::string(100000, ']'),
                                                              "{\"format\": \"other\", \"entries\": {}}"}) {
    write_file_atomic(cache, damaged);
    CHECK(load_one("reg_segfault").reason == segfault);
    CHECK(cached_outcomes(cache) == std::map<std::string, std::string>({{"reg_segfault.so", segfault}}));
  }

  // Entries of files that are gone are dropped when the cache is written.
  CHECK(load_one("good_a").ok);
  fs::remove(fs::path(plugins_dir) / "good_a.so");
  CHECK(load_one("reg_segfault").reason == segfault);  // read from the cache: nothing written
  fs::copy_file(SPECULATORS_FIXTURE_REG_ABORT, fs::path(plugins_dir) / "reg_abort.so");
  CHECK_FALSE(load_one("reg_abort").ok);
  CHECK(cached_outcomes(cache) ==
        std::map<std::string, std::string>({{"reg_abort.so", "crashed in registration (signal " + std::to_string(SIGABRT) + ")"},
                                            {"reg_segfault.so", segfault}}));

  // "" keeps nothing.
  fs::remove(cache);
  Registry registry;
  PluginHost plugins(registry, test::this_host());
  plugins.set_probe_cache("");
  CHECK(plugins.load(plugins_dir + "/reg_segfault.so").reason == segfault);
  CHECK_FALSE(fs::exists(cache));
}

TEST_CASE("the probe cache file: SPECULATORS_PLUGIN_PROBE_CACHE, then XDG_CACHE_HOME, then HOME", "[probe]") {
  const auto restore = [](const char* name, const char* value) {
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  };
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const std::string xdg_saved = xdg != nullptr ? xdg : "";
  const char* env = std::getenv(kPluginProbeCacheEnv);
  const std::string env_saved = env != nullptr ? env : "";

  ::setenv(kPluginProbeCacheEnv, "/somewhere/probes.json", 1);
  CHECK(ProbeCache::default_file() == "/somewhere/probes.json");
  ::setenv(kPluginProbeCacheEnv, "0", 1);
  CHECK(ProbeCache::default_file().empty());
  ::unsetenv(kPluginProbeCacheEnv);
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  CHECK(ProbeCache::default_file() == "/xdg/speculators/plugin-probes.json");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/u", 1);
  CHECK(ProbeCache::default_file() == "/home/u/.cache/speculators/plugin-probes.json");
  ::unsetenv("HOME");
  CHECK(ProbeCache::default_file().empty());

  restore("HOME", home.empty() ? nullptr : home.c_str());
  restore("XDG_CACHE_HOME", xdg != nullptr ? xdg_saved.c_str() : nullptr);
  restore(kPluginProbeCacheEnv, env != nullptr ? env_saved.c_str() : nullptr);
}
