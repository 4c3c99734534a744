// The name and version contract between a plugin and the host: the version a plugin reports is
// the one its CMake target declares (speculators_add_plugin VERSION), and a plugin must register an
// algorithm under its own name, or it is refused when it is listed.
#include <catch2/catch.hpp>

#include <string>

#include "fixture_paths.h"
#include "plugin_host/fingerprint.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_test_util.h"
#include "speculators/error.h"
#include "speculators/log.h"

using namespace speculators;
using speculators::test::this_host;

TEST_CASE("a plugin without an algorithm of its own name is refused when it is listed", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load(SPECULATORS_FIXTURE_NAME_MISMATCH);
  CHECK_FALSE(record.ok);
  CHECK(record.reason ==
        "registers no algorithm named \"name_mismatch\" (the plugin's name, from speculators_add_plugin); "
        "it registered: name_mismatch_algorithm");
  CHECK(registry.names().empty());
  CHECK(format_plugin_list(plugins.records()).find("rejected: registers no algorithm named \"name_mismatch\"") !=
        std::string::npos);

  // Training with --speculator-type name_mismatch says why, not "unknown algorithm".
  const auto candidates = discover_plugins({PluginDir{SPECULATORS_FIXTURE_DIR, "test"}});
  Registry fresh;
  PluginHost host(fresh, this_host());
  try {
    host.load_for_algorithm("name_mismatch", candidates);
    FAIL("a plugin without its own algorithm was used");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()).find("registers no algorithm named \"name_mismatch\"") != std::string::npos);
  }
}

TEST_CASE("the plugin version is the one given to speculators_add_plugin, written once", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load(SPECULATORS_FIXTURE_VERSIONED);
  REQUIRE(record.ok);
  // The CMake call says VERSION 9.8.7; the manifest and the descriptor must both say so.
  CHECK(read_plugin_manifest(plugin_manifest_path(SPECULATORS_FIXTURE_VERSIONED)).version == "9.8.7");
  CHECK(record.version == "9.8.7");
  CHECK(record.name == "versioned_plugin");
  CHECK(registry.contains("versioned_plugin"));
}
