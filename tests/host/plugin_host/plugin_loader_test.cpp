// The checked loading sequence of docs/plugins.md against real shared objects: the fixtures built
// from tests/plugins/fixture_plugin.cpp (one falsified field each), the SPECULATORS_PLUGIN macro, a
// text file named garbage.so, and the real in-tree plugins. Expected reasons are spelled out from
// the values each fixture was built with (tests/plugins/CMakeLists.txt) and the host's own headers,
// not captured from the loader.
#include <catch2/catch.hpp>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <set>

#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_test_util.h"
#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/log.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

using test::cpu_host;
using test::this_host;

// Loads `path` into a fresh registry, checks that it was rejected cleanly, returns the reason.
std::string rejection_of(const std::string& path, HostFingerprint host = this_host()) {
  Registry registry;
  PluginHost plugins(registry, host);
  const PluginRecord record = plugins.load(path);
  CHECK_FALSE(record.ok);
  CHECK(record.status == PluginStatus::kRejected);
  CHECK(record.path == path);
  CHECK(record.reason.find('\n') == std::string::npos);
  CHECK(record.algorithms.empty());
  CHECK(registry.names().empty());
  return record.reason;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

const std::string kEntry = SPECULATORS_PLUGIN_ENTRY_SYMBOL;

}  // namespace

TEST_CASE("each broken fixture is rejected with one line naming both values", "[plugins]") {
  const auto major = SPECULATORS_PLUGIN_ABI_MAJOR;
  const auto minor = SPECULATORS_PLUGIN_ABI_MINOR;
  const auto torch_major = TORCH_VERSION_MAJOR;
  const auto torch_minor = TORCH_VERSION_MINOR;
  const int cxx11 = _GLIBCXX_USE_CXX11_ABI;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {SPECULATORS_FIXTURE_BAD_SIZE, cat("descriptor struct_size ", offsetof(speculators_plugin_descriptor, name), " < ",
                                         sizeof(speculators_plugin_descriptor), " bytes this host reads")},
      {SPECULATORS_FIXTURE_BAD_ABI_MAJOR, cat("plugin ABI major ", major + 1, " != host ", major)},
      {SPECULATORS_FIXTURE_BAD_ABI_MINOR,
       cat("plugin ABI minor ", minor + 1, " > host ", minor, " (the plugin needs a newer host)")},
      {SPECULATORS_FIXTURE_BAD_TORCH,
       cat("LibTorch ", torch_major, ".", torch_minor + 1, " != host ", torch_major, ".", torch_minor)},
      {SPECULATORS_FIXTURE_BAD_TORCH_MAJOR,
       cat("LibTorch ", torch_major + 1, ".", torch_minor, " != host ", torch_major, ".", torch_minor)},
      {SPECULATORS_FIXTURE_BAD_CXX11, cat("C++11 ABI ", cxx11 ? 0 : 1, " != host ", cxx11)},
      {SPECULATORS_FIXTURE_BAD_NAME, "name \"other_name\" does not match file stem \"bad_name\""},
      {SPECULATORS_FIXTURE_NO_ENTRY, "no entry point " + kEntry + " (not a speculators plugin?)"},
      {SPECULATORS_FIXTURE_NULL_DESCRIPTOR, "entry point " + kEntry + " returned null"},
  };
  for (const auto& [path, expected] : cases) {
    INFO(path);
    CHECK(rejection_of(path) == expected);
  }
  CHECK(rejection_of(SPECULATORS_FIXTURE_CUDA_PLUGIN, cpu_host()) ==
        "CUDA plugin (cuda 1) != host 0 (this host is CPU-only)");
}

TEST_CASE("descriptor checks refuse a null name and a missing register function", "[plugins]") {
  const HostFingerprint host = this_host();
  speculators_plugin_descriptor d = {};
  d.struct_size = sizeof d;
  d.abi_major = host.abi_major;
  d.abi_minor = host.abi_minor;
  d.torch_major = host.torch_major;
  d.torch_minor = host.torch_minor;
  d.cxx11_abi = host.cxx11_abi;
  CHECK(check_descriptor(d, host, "x") == std::optional<std::string>("descriptor name is null"));
  d.name = "x";
  CHECK(check_descriptor(d, host, "x") == std::optional<std::string>("descriptor has no register function"));
  d.register_fn = [](void*, char*, size_t) { return 0; };
  CHECK_FALSE(check_descriptor(d, host, "x").has_value());
  // The host reads every field up to and including register_fn, no more.
  CHECK(kDescriptorBytesRead == sizeof(speculators_plugin_descriptor));
}

TEST_CASE("a text file named .so is rejected by dlopen with its error", "[plugins]") {
  const std::string reason = rejection_of(SPECULATORS_FIXTURE_GARBAGE);
  CHECK(starts_with(reason, "dlopen failed: "));
  CHECK(reason.find("garbage.so") != std::string::npos);
  const std::string missing = rejection_of(std::string(SPECULATORS_FIXTURE_DIR) + "/does_not_exist.so");
  CHECK(starts_with(missing, "dlopen failed: "));
  CHECK(missing.find("does_not_exist.so") != std::string::npos);
}

TEST_CASE("a rejected plugin still reports the descriptor fields it could read", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord torch = plugins.load(SPECULATORS_FIXTURE_BAD_TORCH);
  CHECK(torch.has_descriptor);
  CHECK(torch.name == "bad_torch");
  CHECK(torch.version == "1.0.0");
  CHECK(torch.fingerprint.torch_major == TORCH_VERSION_MAJOR);
  CHECK(torch.fingerprint.torch_minor == TORCH_VERSION_MINOR + 1);
  const PluginRecord renamed = plugins.load(SPECULATORS_FIXTURE_BAD_NAME);
  CHECK(renamed.name == "other_name");  // what the plugin claims, shown next to its path
  // Nothing past a too small struct_size is read.
  const PluginRecord small = plugins.load(SPECULATORS_FIXTURE_BAD_SIZE);
  CHECK_FALSE(small.has_descriptor);
  CHECK(small.struct_size == offsetof(speculators_plugin_descriptor, name));
  CHECK(small.name == "bad_size");
  CHECK(small.version.empty());
  const PluginRecord none = plugins.load(SPECULATORS_FIXTURE_NO_ENTRY);
  CHECK_FALSE(none.has_descriptor);
  CHECK(none.name == "no_entry");
  CHECK(plugins.records().size() == 4);
}

TEST_CASE("good fixtures load and their algorithms are usable from the host", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord a = plugins.load(SPECULATORS_FIXTURE_GOOD_A);
  REQUIRE(a.ok);
  CHECK(a.status == PluginStatus::kOk);
  CHECK(a.reason.empty());
  CHECK(a.name == "good_a");
  CHECK(a.version == "1.0.0");
  CHECK(a.build_info == "fixture build");
  CHECK(a.fingerprint.abi_major == SPECULATORS_PLUGIN_ABI_MAJOR);
  CHECK(a.fingerprint.torch_minor == TORCH_VERSION_MINOR);
  CHECK(a.algorithms == std::vector<std::string>{"good_a"});

  const PluginRecord b = plugins.load(SPECULATORS_FIXTURE_GOOD_B);
  REQUIRE(b.ok);
  CHECK(b.version == "0.0.1-b");
  CHECK(b.algorithms == std::vector<std::string>{"good_b", "good_b_extra"});
  CHECK(registry.names() == std::vector<std::string>{"good_a", "good_b", "good_b_extra"});

  // The plugin links the libspeculators_core.so the host already loaded (RTLD_LOCAL does not
  // duplicate it), so its objects are ordinary Algorithms here.
  const Registry::Entry& entry = registry.get("good_b_extra");
  CHECK(entry.plugin == "good_b");
  CHECK(entry.path == SPECULATORS_FIXTURE_GOOD_B);
  CHECK(entry.algorithm->name() == "good_b_extra");
  CHECK(entry.algorithm->description() == "test fixture algorithm good_b_extra");
  const Schema schema = entry.algorithm->schema();
  REQUIRE(schema.size() == 3);
  CHECK(schema[0].key == "fixture_width");
  CHECK(schema[0].default_value == Json(4));
  CHECK(schema[2].choices == std::vector<std::string>{"fast", "slow"});
  // An Error thrown inside the plugin is caught as speculators::Error by the host.
  try {
    entry.algorithm->from_training_args(BuildContext{});
    FAIL("fixture built a model");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()) == "fixture algorithm good_b_extra cannot build a model");
  }
}

TEST_CASE("a plugin written with the SPECULATORS_PLUGIN macro loads with this build's fingerprint", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry);
  const PluginRecord record = plugins.load(SPECULATORS_FIXTURE_MACRO_GOOD);
  REQUIRE(record.ok);
  CHECK(record.name == "macro_good");
  CHECK(record.version == "2.3.4");
  CHECK(record.build_info == SPECULATORS_BUILD_INFO);
  CHECK(record.struct_size == sizeof(speculators_plugin_descriptor));
  CHECK(record.fingerprint.cuda == SPECULATORS_WITH_CUDA);
  CHECK(record.fingerprint.cxx11_abi == _GLIBCXX_USE_CXX11_ABI);
  CHECK(registry.get("macro_good").algorithm->name() == "macro_good");
}

TEST_CASE("a failing register function leaves nothing registered", "[plugins]") {
  // Each of these registers its algorithm before failing: the staging registry must drop it.
  CHECK(rejection_of(SPECULATORS_FIXTURE_REG_FAILS) == "register failed: fixture reg_fails refuses to register");
  CHECK(rejection_of(SPECULATORS_FIXTURE_REG_THROWS) == "register threw: fixture reg_throws throws in register");
  CHECK(rejection_of(SPECULATORS_FIXTURE_MACRO_THROWS) == "register failed: macro fixture body throws");
  CHECK(rejection_of(SPECULATORS_FIXTURE_REG_SILENT_FAIL) == "register returned 1 without an error message");
  const std::string self = SPECULATORS_FIXTURE_REG_SELF_DUPLICATE;
  CHECK(rejection_of(self) == cat("register failed: algorithm \"reg_self_duplicate\" from plugin reg_self_duplicate (",
                                  self, ") is already registered by plugin reg_self_duplicate (", self, ")"));

  // The host keeps working after a plugin threw through the C boundary.
  Registry registry;
  PluginHost plugins(registry, this_host());
  CHECK_FALSE(plugins.load(SPECULATORS_FIXTURE_REG_THROWS).ok);
  CHECK(plugins.load(SPECULATORS_FIXTURE_GOOD_A).ok);
  CHECK(registry.names() == std::vector<std::string>{"good_a"});
}

TEST_CASE("a duplicate algorithm name is rejected naming both plugins", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  REQUIRE(plugins.load(SPECULATORS_FIXTURE_GOOD_A).ok);
  const PluginRecord dup = plugins.load(SPECULATORS_FIXTURE_REG_DUPLICATE);
  CHECK_FALSE(dup.ok);
  CHECK(dup.reason == cat("register failed: algorithm \"good_a\" from plugin reg_duplicate (",
                          SPECULATORS_FIXTURE_REG_DUPLICATE, ") is already registered by plugin good_a (",
                          SPECULATORS_FIXTURE_GOOD_A, ")"));
  // Its own algorithm, registered before the clash, is not kept either.
  CHECK(registry.names() == std::vector<std::string>{"good_a"});
  CHECK(registry.get("good_a").plugin == "good_a");
}

TEST_CASE("a plugin whose name is already registered is rejected before register runs", "[plugins]") {
  test::TempDir temp("plugin_copy");
  const fs::path copy = fs::path(temp.dir("other")) / "good_a.so";
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, copy);
  Registry registry;
  PluginHost plugins(registry, this_host());
  REQUIRE(plugins.load(SPECULATORS_FIXTURE_GOOD_A).ok);
  const PluginRecord second = plugins.load(copy.string());
  CHECK_FALSE(second.ok);
  CHECK(second.reason == cat("name \"good_a\" is already registered by plugin good_a (", SPECULATORS_FIXTURE_GOOD_A, ")"));
  CHECK(registry.get("good_a").path == SPECULATORS_FIXTURE_GOOD_A);
}

TEST_CASE("loading the same plugin twice returns the first record", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  REQUIRE(plugins.load(SPECULATORS_FIXTURE_GOOD_A).ok);
  const std::string other_spelling = std::string(SPECULATORS_FIXTURE_DIR) + "/./good_a.so";
  const PluginRecord again = plugins.load(other_spelling);
  CHECK(again.ok);
  CHECK(again.path == SPECULATORS_FIXTURE_GOOD_A);
  CHECK(plugins.records().size() == 1);
  CHECK(registry.names() == std::vector<std::string>{"good_a"});
}

TEST_CASE("CUDA and ABI-minor compatibility go one way only", "[plugins]") {
  HostFingerprint cuda_host = this_host();
  cuda_host.cuda = 1;
  Registry registry;
  PluginHost on_cuda(registry, cuda_host);
  CHECK(on_cuda.load(SPECULATORS_FIXTURE_CUDA_PLUGIN).ok);  // CUDA plugin on a CUDA host
  CHECK(on_cuda.load(SPECULATORS_FIXTURE_GOOD_A).ok);       // CPU plugin on a CUDA host

  HostFingerprint newer_host = this_host();
  newer_host.abi_minor = SPECULATORS_PLUGIN_ABI_MINOR + 1;
  Registry newer_registry;
  PluginHost newer(newer_registry, newer_host);
  CHECK(newer.load(SPECULATORS_FIXTURE_GOOD_A).ok);         // an older plugin minor is fine
  CHECK(newer.load(SPECULATORS_FIXTURE_BAD_ABI_MINOR).ok);  // equal minor is fine
}

TEST_CASE("a directory mixing good and bad plugins loads the good ones and lists the rest", "[plugins]") {
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(SPECULATORS_FIXTURE_DIR)) {
    if (entry.path().extension() == ".so") files.insert(entry.path().filename().string());
  }
  const auto candidates = discover_plugins({PluginDir{SPECULATORS_FIXTURE_DIR, "test"}});
  REQUIRE(candidates.size() == files.size());

  Registry registry;
  PluginHost plugins(registry, this_host());
  plugins.set_probe_timeout(std::chrono::seconds(2));  // reg_hang never returns
  plugins.load_all(candidates);
  REQUIRE(plugins.records().size() == files.size());
  std::set<std::string> ok;
  for (const auto& record : plugins.records()) {
    if (record.ok) ok.insert(record.name);
    else CHECK_FALSE(record.reason.empty());
  }
  // cuda_plugin is good too on a host built against a CUDA LibTorch.
  std::set<std::string> good = {"good_a", "good_b", "macro_good"};
  std::vector<std::string> names = {"good_a", "good_b", "good_b_extra", "macro_good"};
  if (SPECULATORS_WITH_CUDA) {
    good.insert("cuda_plugin");
    names.insert(names.begin(), "cuda_plugin");
  }
  CHECK(ok == good);
  CHECK(registry.names() == names);

  const std::string listing = format_plugin_list(plugins.records());
  CHECK(static_cast<std::size_t>(std::count(listing.begin(), listing.end(), '\n')) == files.size());
  CHECK(listing.find("rejected: dlopen failed") != std::string::npos);
  CHECK(listing.find("rejected: no entry point " + kEntry) != std::string::npos);
  CHECK(listing.find("rejected: plugin ABI major") != std::string::npos);
  CHECK(listing.find("rejected: crashed in registration (signal 11)") != std::string::npos);
  CHECK(listing.find("rejected: hung in registration") != std::string::npos);
}

TEST_CASE("load_for_algorithm loads the named plugin and explains failures", "[plugins]") {
  const auto candidates = discover_plugins({PluginDir{SPECULATORS_FIXTURE_DIR, "test"}});
  {
    Registry registry;
    PluginHost plugins(registry, this_host());
    CHECK(plugins.load_for_algorithm("good_a", candidates).plugin == "good_a");
    CHECK(plugins.records().size() == 1);  // only good_a.so was opened
  }
  {
    // good_b_extra lives in good_b.so: the host has to open every plugin to find it.
    Registry registry;
    PluginHost plugins(registry, this_host());
    CHECK(plugins.load_for_algorithm("good_b_extra", candidates).plugin == "good_b");
  }
  {
    Registry registry;
    PluginHost plugins(registry, this_host());
    try {
      plugins.load_for_algorithm("bad_cxx11", candidates);
      FAIL("rejected plugin used");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kPlugin);
      CHECK(std::string(e.what()) == cat("plugin bad_cxx11 (", SPECULATORS_FIXTURE_BAD_CXX11,
                                         ") rejected: C++11 ABI ", _GLIBCXX_USE_CXX11_ABI ? 0 : 1, " != host ",
                                         _GLIBCXX_USE_CXX11_ABI));
    }
  }
  {
    Registry registry;
    PluginHost plugins(registry, this_host());
    try {
      plugins.load_for_algorithm("nonesuch", candidates);
      FAIL("unknown algorithm found");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kUsage);
      const std::string message = e.what();
      CHECK(starts_with(message, cat("unknown algorithm \"nonesuch\"; registered: ",
                                     SPECULATORS_WITH_CUDA ? "cuda_plugin, " : "", "good_a, good_b, good_b_extra, macro_good;")));
      CHECK(message.find(cat("rejected ", SPECULATORS_FIXTURE_BAD_NAME, ": name \"other_name\"")) != std::string::npos);
    }
  }
}

// The real in-tree plugins, built into the build tree's plugins/ before host_tests (see
// tests/plugins/CMakeLists.txt). Their absence fails the test: it means a broken build.
TEST_CASE("the real myalgo and eagle3 plugins load from the build tree", "[real-plugins][plugins]") {
  const fs::path dir = SPECULATORS_REAL_PLUGIN_DIR;
  for (const char* name : {"myalgo", "eagle3"}) {
    INFO(name);
    REQUIRE(fs::is_regular_file(dir / (std::string(name) + ".so")));  // absent = a broken build, not a skip
  }
  Registry registry;
  PluginHost plugins(registry);
  plugins.load_all(discover_plugins({PluginDir{dir.string(), "build tree"}}));
  for (const char* name : {"myalgo", "eagle3"}) {
    INFO(name);
    const auto record = std::find_if(plugins.records().begin(), plugins.records().end(),
                                     [&](const PluginRecord& r) { return r.name == name; });
    REQUIRE(record != plugins.records().end());
    INFO(record->reason);
    CHECK(record->ok);
    CHECK(record->path == (dir / (std::string(name) + ".so")).string());
    REQUIRE(registry.contains(name));
    const Registry::Entry& entry = registry.get(name);
    CHECK(entry.plugin == name);
    CHECK(entry.algorithm->name() == name);
    CHECK_FALSE(entry.algorithm->schema().empty());
  }
  const Schema myalgo = registry.get("myalgo").algorithm->schema();
  CHECK(std::any_of(myalgo.begin(), myalgo.end(), [](const Option& o) { return o.key == "block_size"; }));
  CHECK(describe_algorithm(*registry.get("myalgo").algorithm).find("--block-size") != std::string::npos);
}
