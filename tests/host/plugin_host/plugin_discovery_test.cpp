// Where the host looks for plugins and how it reports them (host/src/plugin_host/plugin_loader.h):
// the search path's precedence (--plugin-dir > SPECULATORS_PLUGIN_PATH > install dir > build tree),
// shadowing of a stem by an earlier directory, and the --list-plugins / --describe text.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>

#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_test_util.h"
#include "speculators/error.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> paths_of(const std::vector<PluginDir>& dirs) {
  std::vector<std::string> out;
  for (const auto& dir : dirs) out.push_back(dir.path);
  return out;
}

std::vector<std::string> origins_of(const std::vector<PluginDir>& dirs) {
  std::vector<std::string> out;
  for (const auto& dir : dirs) out.push_back(dir.origin);
  return out;
}

// A prefix laid out as an installation: bin/ and the install plugin directory.
struct Layout {
  test::TempDir temp{"plugin_discovery"};
  std::string cli = temp.dir("cli");
  std::string env1 = temp.dir("env1");
  std::string env2 = temp.dir("env2");
  std::string bin = temp.dir("prefix/bin");
  std::string install = temp.dir(std::string("prefix/") + SPECULATORS_TEST_INSTALL_PLUGINDIR);
};

}  // namespace

TEST_CASE("search path: --plugin-dir, then SPECULATORS_PLUGIN_PATH, then the install dir", "[plugins]") {
  Layout layout;
  PluginSearchInputs inputs;
  inputs.plugin_dirs = {layout.cli};
  // Empty entries and entries that are not directories are skipped.
  inputs.env_path = layout.env1 + "::" + (layout.temp.path() / "missing").string() + ":" + layout.env2;
  inputs.exe_dir = layout.bin;
  const auto dirs = plugin_search_path(inputs);
  CHECK(paths_of(dirs) == std::vector<std::string>{layout.cli, layout.env1, layout.env2, layout.install});
  CHECK(origins_of(dirs) ==
        std::vector<std::string>{"--plugin-dir", "SPECULATORS_PLUGIN_PATH", "SPECULATORS_PLUGIN_PATH", "install"});
}

TEST_CASE("search path: a directory named twice keeps its first position", "[plugins]") {
  Layout layout;
  PluginSearchInputs inputs;
  inputs.plugin_dirs = {layout.env2, layout.temp.path().string() + "/env2/"};
  inputs.env_path = layout.env1 + ":" + layout.env2;
  const auto dirs = plugin_search_path(inputs);
  CHECK(paths_of(dirs) == std::vector<std::string>{layout.env2, layout.env1});
  CHECK(origins_of(dirs) == std::vector<std::string>{"--plugin-dir", "SPECULATORS_PLUGIN_PATH"});
}

TEST_CASE("search path: a --plugin-dir that is not a directory is a usage error", "[plugins]") {
  Layout layout;
  PluginSearchInputs inputs;
  const std::string missing = (layout.temp.path() / "nope").string();
  inputs.plugin_dirs = {layout.cli, missing};
  try {
    plugin_search_path(inputs);
    FAIL("missing --plugin-dir accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()) == "--plugin-dir " + missing + ": not a directory");
  }
}

TEST_CASE("search path: a build tree is found next to the executable", "[plugins]") {
  test::TempDir temp("plugin_build_tree");
  const std::string bin = temp.dir("build/bin");
  const std::string plugins = temp.dir("build/plugins");
  PluginSearchInputs inputs;
  inputs.exe_dir = bin;
  const auto dirs = plugin_search_path(inputs);
  CHECK(paths_of(dirs) == std::vector<std::string>{plugins});
  CHECK(origins_of(dirs) == std::vector<std::string>{"build tree"});

  // This test binary runs from this build's bin/, so the configured plugin directory is used.
  inputs.exe_dir = executable_dir();
  REQUIRE(fs::is_directory(SPECULATORS_REAL_PLUGIN_DIR));
  const auto own = plugin_search_path(inputs);
  REQUIRE_FALSE(own.empty());
  CHECK(own.back().path == fs::canonical(SPECULATORS_REAL_PLUGIN_DIR).string());
  CHECK(own.back().origin == "build tree");
}

TEST_CASE("search inputs come from the environment and /proc/self/exe", "[plugins]") {
  ::setenv(kPluginPathEnv, "/a:/b", 1);
  PluginSearchInputs inputs = plugin_search_inputs({"/cli"});
  ::unsetenv(kPluginPathEnv);
  CHECK(inputs.plugin_dirs == std::vector<std::string>{"/cli"});
  REQUIRE(inputs.env_path.has_value());
  CHECK(*inputs.env_path == "/a:/b");
  CHECK(inputs.exe_dir == fs::canonical("/proc/self/exe").parent_path().string());
  CHECK_FALSE(plugin_search_inputs({}).env_path.has_value());
}

TEST_CASE("discovery: every .so sorted by name, earlier directories shadow later ones", "[plugins]") {
  Layout layout;
  const std::string cli_alpha = layout.temp.file("cli/alpha.so");
  const std::string env1_beta = layout.temp.file("env1/beta.so");
  const std::string env1_alpha = layout.temp.file("env1/alpha.so");
  const std::string env2_gamma = layout.temp.file("env2/gamma.so");
  const std::string env2_beta = layout.temp.file("env2/beta.so");
  layout.temp.file("env2/README.txt");    // not a .so
  layout.temp.file("env2/libold.so.1");   // a versioned library, not a plugin
  layout.temp.dir("env2/folder.so");      // a directory, not a file
  const std::vector<PluginDir> dirs = {
      {layout.cli, "--plugin-dir"}, {layout.env1, "SPECULATORS_PLUGIN_PATH"}, {layout.env2, "SPECULATORS_PLUGIN_PATH"}};
  const auto found = discover_plugins(dirs);
  REQUIRE(found.size() == 5);
  struct Expected { std::string stem, path, shadowed_by; };
  const std::vector<Expected> expected = {
      {"alpha", cli_alpha, ""},
      {"alpha", env1_alpha, cli_alpha},
      {"beta", env1_beta, ""},
      {"beta", env2_beta, env1_beta},
      {"gamma", env2_gamma, ""},
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO(i);
    CHECK(found[i].stem == expected[i].stem);
    CHECK(found[i].path == expected[i].path);
    CHECK(found[i].shadowed_by == expected[i].shadowed_by);
  }
  CHECK(found[1].origin == "SPECULATORS_PLUGIN_PATH");

  // Shadowed files are listed but never opened; the others here are empty files, so dlopen fails.
  Registry registry;
  PluginHost plugins(registry);
  plugins.load_all(found);
  REQUIRE(plugins.records().size() == 5);
  CHECK(plugins.records()[1].status == PluginStatus::kShadowed);
  CHECK(plugins.records()[1].reason == "shadowed by " + cli_alpha);
  CHECK(plugins.records()[3].reason == "shadowed by " + env1_beta);
  CHECK(plugins.records()[0].reason.rfind("dlopen failed: ", 0) == 0);
  CHECK_FALSE(plugins.records()[1].ok);
}

TEST_CASE("discovery: a directory that cannot be listed is an error naming it", "[plugins]") {
  test::TempDir temp("plugin_unlistable");
  const std::string missing = (temp.path() / "gone").string();
  try {
    discover_plugins({PluginDir{missing, "--plugin-dir"}});
    FAIL("missing directory listed");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()).rfind("cannot list plugin directory " + missing + " (--plugin-dir): ", 0) == 0);
  }
}

TEST_CASE("--list-plugins prints one aligned line per plugin", "[plugins]") {
  PluginRecord ok;
  ok.name = "myalgo";
  ok.version = "0.1.0";
  ok.path = "/p/myalgo.so";
  ok.ok = true;
  ok.status = PluginStatus::kOk;
  PluginRecord bad;
  bad.name = "old";
  bad.path = "/q/old.so";
  bad.reason = "LibTorch 1.12 != host 1.13";
  PluginRecord hidden;
  hidden.name = "myalgo";
  hidden.path = "/long/dir/myalgo.so";
  hidden.status = PluginStatus::kShadowed;
  hidden.reason = "shadowed by /p/myalgo.so";
  CHECK(format_plugin_list({ok, bad, hidden}) ==
        "myalgo  0.1.0  /p/myalgo.so         ok\n"
        "old     -      /q/old.so            rejected: LibTorch 1.12 != host 1.13\n"
        "myalgo  -      /long/dir/myalgo.so  shadowed by /p/myalgo.so\n");
  CHECK(format_plugin_list({}) == "(no plugins found)\n");
  CHECK(format_search_path({{"/a", "--plugin-dir"}, {"/b", "install"}}) ==
        "plugin search path (earlier wins):\n  /a  (--plugin-dir)\n  /b  (install)\n");
}

namespace {

class DescribedAlgorithm : public Algorithm {
 public:
  std::string name() const override { return "demo"; }
  std::string description() const override { return "A demo algorithm."; }
  Schema schema() const override {
    return {opt_int("block_size", 8, "Positions predicted per step"),
            opt_bool("norm_output", true, "Normalise the output"),
            opt_string("draft_arch", Json(), "Decoder architecture", "draft", {"llama", "qwen3"}),
            opt_int_list("target_layer_ids", Json(std::vector<std::int64_t>{2, 5}), "Verifier layers"),
            opt_string("loss_fn", "kl_div", "Loss", "loss"),
            opt_bool("dry_run", false, "Stop after building", "root")};
  }
  std::vector<std::int64_t> target_layer_ids(const BuildContext&) const override { return {}; }
  std::shared_ptr<DraftModel> from_training_args(const BuildContext&) const override { return nullptr; }
};

class BareAlgorithm : public DescribedAlgorithm {
 public:
  Schema schema() const override { return {}; }
};

}  // namespace

TEST_CASE("--describe lists each option as flag, type, default, help, choices and YAML key", "[plugins]") {
  CHECK(describe_algorithm(DescribedAlgorithm()) ==
        "demo: A demo algorithm.\n"
        "\n"
        "Options (flag, type, default; YAML key under train:):\n"
        "  --block-size  (int, default 8)\n"
        "      Positions predicted per step\n"
        "      YAML: train.draft.block_size\n"
        "  --norm-output / --no-norm-output  (bool, default true)\n"
        "      Normalise the output\n"
        "      YAML: train.draft.norm_output\n"
        "  --draft-arch  (string, default unset)\n"
        "      Decoder architecture\n"
        "      choices: llama, qwen3\n"
        "      YAML: train.draft.draft_arch\n"
        "  --target-layer-ids  (int list, default [2,5])\n"
        "      Verifier layers\n"
        "      YAML: train.draft.target_layer_ids\n"
        "  --loss-fn  (string, default \"kl_div\")\n"
        "      Loss\n"
        "      YAML: train.loss.loss_fn\n"
        "  --dry-run / --no-dry-run  (bool, default false)\n"
        "      Stop after building\n"
        "      YAML: train.dry_run\n");
  CHECK(describe_algorithm(BareAlgorithm()) ==
        "demo: A demo algorithm.\n\nNo options of its own (the host's options apply).\n");
}

TEST_CASE("--describe works on an algorithm registered by a plugin", "[plugins]") {
  Registry registry;
  PluginHost plugins(registry);
  REQUIRE(plugins.load(SPECULATORS_FIXTURE_GOOD_A).ok);
  const std::string text = describe_algorithm(*registry.get("good_a").algorithm);
  CHECK(text.rfind("good_a: test fixture algorithm good_a\n", 0) == 0);
  CHECK(text.find("  --fixture-flag / --no-fixture-flag  (bool, default true)\n") != std::string::npos);
  CHECK(text.find("      choices: fast, slow\n      YAML: train.trainer.fixture_mode\n") != std::string::npos);
}
