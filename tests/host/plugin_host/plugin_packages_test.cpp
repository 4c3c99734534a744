// Binary plugin packages (host/src/plugin_host/plugin_packages.h, fingerprint.h, plugin_dirs.h)
// with real files: packages built by the same CMake steps as speculators_add_plugin(... PACKAGE)
// from the good_a and bad_torch fixtures (tests/plugins/CMakeLists.txt), installed, listed and
// removed; manifests checked by the loader before it opens a .so; and the rule that plugin
// directories may be writable by their owner only. Expected values come from the fixtures' build
// settings and LibTorch's headers.
#include <catch2/catch.hpp>
#include <dlfcn.h>
#include <sys/stat.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fixture_paths.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_host/plugin_packages.h"
#include "plugin_test_util.h"
#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/log.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

using test::this_host;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `body` and returns the Error it throws (fails the test when it throws nothing).
template <typename F>
Error error_of(F&& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no speculators::Error was thrown");
  return Error("");
}

// The manifest text of a plugin, written out here field by field (not by the code under test).
std::string manifest_text(const std::string& name, const std::string& sha, int torch_minor) {
  return cat("{\"format\": \"speculators-plugin-manifest\", \"format_version\": 1, \"name\": \"", name,
             "\", \"version\": \"9.9.9\", \"library\": \"", name, ".so\", \"sha256\": \"", sha,
             "\", \"plugin_abi_major\": ", SPECULATORS_PLUGIN_ABI_MAJOR,
             ", \"plugin_abi_minor\": ", SPECULATORS_PLUGIN_ABI_MINOR, ", \"torch_version\": \"",
             TORCH_VERSION_MAJOR, ".", torch_minor, ".0\", \"torch_major\": ", TORCH_VERSION_MAJOR,
             ", \"torch_minor\": ", torch_minor, ", \"cxx11_abi\": ", _GLIBCXX_USE_CXX11_ABI, ", \"cuda\": 0}\n");
}

// sha256 of a file computed by coreutils' sha256sum: independent of the host's implementation.
std::string sha256sum(const fs::path& path) {
  const fs::path out = path.string() + ".sum";
  REQUIRE(std::system(cat("sha256sum '", path.string(), "' > '", out.string(), "'").c_str()) == 0);
  return read_bytes(out).substr(0, 64);
}

bool is_mapped(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  return handle != nullptr;
}

const std::string kNextTorchMinor = std::to_string(TORCH_VERSION_MINOR + 1);
const std::string kHostTorch = cat(TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR);

}  // namespace

TEST_CASE("packages: one built for another LibTorch minor is refused at install time, one line", "[packages]") {
  test::TempDir temp("pkg_torch");
  const fs::path dir = temp.path() / "fresh";
  const Error e = error_of([&] { install_plugin_package(SPECULATORS_FIXTURE_PACKAGE_BAD_TORCH, dir.string(), this_host()); });
  CHECK(e.code() == ExitCode::kPlugin);
  CHECK(std::string(e.what()) == cat("plugin package ", SPECULATORS_FIXTURE_PACKAGE_BAD_TORCH,
                                     " (bad_torch 0.0.1) does not fit this host: LibTorch ", TORCH_VERSION_MAJOR, ".",
                                     kNextTorchMinor, " != host ", kHostTorch));
  CHECK(std::string(e.what()).find('\n') == std::string::npos);
  CHECK_FALSE(fs::exists(dir));  // nothing was written, not even the directory
}

TEST_CASE("packages: the built package holds the .so and a manifest with its sha256", "[packages]") {
  test::TempDir temp("pkg_contents");
  REQUIRE(std::system(cat("tar -xzf '", SPECULATORS_FIXTURE_PACKAGE_GOOD_A, "' -C '", temp.path().string(), "'").c_str()) == 0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(temp.path())) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"good_a.manifest.json", "good_a.so"});
  CHECK(read_bytes(temp.path() / "good_a.so") == read_bytes(SPECULATORS_FIXTURE_GOOD_A));
  const PluginManifest m = read_plugin_manifest((temp.path() / "good_a.manifest.json").string());
  CHECK(m.name == "good_a");
  CHECK(m.version == "0.0.1");
  CHECK(m.library == "good_a.so");
  CHECK(m.sha256 == sha256sum(temp.path() / "good_a.so"));
  CHECK(m.fingerprint.abi_major == SPECULATORS_PLUGIN_ABI_MAJOR);
  CHECK(m.fingerprint.abi_minor == SPECULATORS_PLUGIN_ABI_MINOR);
  CHECK(m.fingerprint.torch_major == TORCH_VERSION_MAJOR);
  CHECK(m.fingerprint.torch_minor == TORCH_VERSION_MINOR);
  CHECK(m.torch_version.rfind(kHostTorch + ".", 0) == 0);
  CHECK(m.fingerprint.cxx11_abi == _GLIBCXX_USE_CXX11_ABI);
  CHECK(m.fingerprint.cuda == SPECULATORS_WITH_CUDA);
}

TEST_CASE("packages: install into a fresh directory, list, load, remove", "[packages]") {
  test::TempDir temp("pkg_install");
  const std::string dir = (temp.path() / "plugins").string();
  const PluginManifest m = install_plugin_package(SPECULATORS_FIXTURE_PACKAGE_GOOD_A, dir, this_host());
  CHECK(m.name == "good_a");
  CHECK(read_bytes(fs::path(dir) / "good_a.so") == read_bytes(SPECULATORS_FIXTURE_GOOD_A));
  CHECK(fs::exists(fs::path(dir) / "good_a.manifest.json"));
  // Only the two files: no temporary left behind.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);

  const auto listed = list_installed_plugins(dir, this_host());
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].name == "good_a");
  CHECK(listed[0].status == "ok");
  REQUIRE(listed[0].manifest);
  CHECK(listed[0].manifest->version == "0.0.1");
  const std::string text = format_installed_plugins(dir, listed);
  CHECK(text.find("good_a 0.0.1  plugin ABI ") != std::string::npos);
  CHECK(text.find(cat("LibTorch ", kHostTorch)) != std::string::npos);

  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load((fs::path(dir) / "good_a.so").string());
  CHECK(record.ok);
  CHECK(record.manifest_path == (fs::path(dir) / "good_a.manifest.json").string());

  remove_installed_plugin("good_a", dir);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 0);
  const Error e = error_of([&] { remove_installed_plugin("good_a", dir); });
  CHECK(e.code() == ExitCode::kUsage);
  CHECK(std::string(e.what()) == cat("plugins remove: no plugin \"good_a\" in ", dir, " (installed: none)"));
  CHECK(error_of([&] { remove_installed_plugin("../etc", dir); }).code() == ExitCode::kUsage);
}

TEST_CASE("packages: the .deb installs the same files", "[packages]") {
  const std::string deb = SPECULATORS_FIXTURE_PACKAGE_GOOD_A_DEB;
  if (deb.empty()) return;  // no dpkg-deb on this machine: no .deb was built
  test::TempDir temp("pkg_deb");
  const std::string dir = (temp.path() / "plugins").string();
  install_plugin_package(deb, dir, this_host());
  CHECK(read_bytes(fs::path(dir) / "good_a.so") == read_bytes(SPECULATORS_FIXTURE_GOOD_A));
  CHECK(list_installed_plugins(dir, this_host()).at(0).status == "ok");
}

TEST_CASE("packages: altered, empty or unreadable packages are refused before copying", "[packages]") {
  test::TempDir temp("pkg_bad");
  const fs::path stage = temp.dir("stage");
  const std::string dir = (temp.path() / "plugins").string();
  REQUIRE(std::system(cat("tar -xzf '", SPECULATORS_FIXTURE_PACKAGE_GOOD_A, "' -C '", stage.string(), "'").c_str()) == 0);
  const std::string manifest_sha = read_plugin_manifest((stage / "good_a.manifest.json").string()).sha256;
  std::ofstream(stage / "good_a.so", std::ios::app | std::ios::binary) << "tampered";
  const std::string altered = (temp.path() / "altered.tar.gz").string();
  REQUIRE(std::system(cat("tar -czf '", altered, "' -C '", stage.string(), "' good_a.so good_a.manifest.json").c_str()) == 0);
  Error e = error_of([&] { install_plugin_package(altered, dir, this_host()); });
  CHECK(e.code() == ExitCode::kPlugin);
  CHECK(std::string(e.what()) == cat("plugin package ", altered, ": good_a.so does not match its manifest: sha256 ",
                                     sha256sum(stage / "good_a.so"), " != ", manifest_sha,
                                     " (corrupted or altered package)"));
  CHECK_FALSE(fs::exists(dir));

  const std::string no_manifest = (temp.path() / "no_manifest.tar.gz").string();
  REQUIRE(std::system(cat("tar -czf '", no_manifest, "' -C '", stage.string(), "' good_a.so").c_str()) == 0);
  e = error_of([&] { install_plugin_package(no_manifest, dir, this_host()); });
  CHECK(std::string(e.what()) == cat("plugin package ", no_manifest, ": expected exactly one *.manifest.json, found 0"));

  const std::string not_gzip = temp.file("junk.tar.gz");
  e = error_of([&] { install_plugin_package(not_gzip, dir, this_host()); });
  CHECK(e.code() == ExitCode::kPlugin);
  CHECK(std::string(e.what()).rfind(cat("plugin package ", not_gzip, ": cannot unpack (gzip): "), 0) == 0);

  e = error_of([&] { install_plugin_package(temp.file("plugin.zip"), dir, this_host()); });
  CHECK(e.code() == ExitCode::kUsage);
  CHECK(std::string(e.what()).find("expected a .tar.gz, .tgz or .deb file") != std::string::npos);
  const std::string missing = (temp.path() / "missing.tar.gz").string();
  e = error_of([&] { install_plugin_package(missing, dir, this_host()); });
  CHECK(e.code() == ExitCode::kUsage);
  CHECK(std::string(e.what()) == cat("plugin package ", missing, ": no such file"));
}

TEST_CASE("manifests: each bad field is an error naming the file and the key", "[packages]") {
  test::TempDir temp("manifest_bad");
  const std::string sha(64, 'a');
  const std::string good = manifest_text("p", sha, TORCH_VERSION_MINOR);
  const auto write = [&](const std::string& text) {
    const std::string path = (temp.path() / "p.manifest.json").string();
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  };
  CHECK(read_plugin_manifest(write(good)).name == "p");
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not valid JSON"},
      {"{\"a\": " + std::string(50000, '[') + std::string(50000, ']') + "}",
       "not valid JSON: " + (temp.path() / "p.manifest.json").string() + ": invalid JSON: nested deeper than 256 levels"},
      {replaced("\"cuda\": 0", "\"cuda\": 1e400"), "not valid JSON"},
      {replaced("\"name\": \"p\", ", ""), "missing key \"name\""},
      {replaced("\"library\": \"p.so\"", "\"library\": \"../q.so\""), "\"library\" is \"../q.so\", expected \"p.so\""},
      {replaced(sha, "xyz"), "\"sha256\" must be 64 lowercase hex digits, got \"xyz\""},
      {replaced("\"cuda\": 0", "\"cuda\": \"no\""), "\"cuda\" must be a non-negative integer, got \"no\""},
      {replaced("\"format_version\": 1", "\"format_version\": 2"), "format_version 2 is not 1"},
      {replaced("speculators-plugin-manifest", "other"), "\"format\" is \"other\""},
      {replaced("\"name\": \"p\"", "\"name\": \".hidden\""), "bad plugin name \".hidden\""},
  };
  for (const auto& [text, expected] : cases) {
    const std::string path = write(text);
    const Error e = error_of([&] { read_plugin_manifest(path); });
    CHECK(e.code() == ExitCode::kPlugin);
    INFO(e.what());
    CHECK(std::string(e.what()).rfind("manifest " + path + ": ", 0) == 0);
    CHECK(std::string(e.what()).find(expected) != std::string::npos);
  }
}

TEST_CASE("loader: a manifest for another LibTorch rejects the .so without opening it", "[packages]") {
  test::TempDir temp("manifest_torch");
  const fs::path so = temp.path() / "good_a.so";
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, so);
  std::ofstream(temp.path() / "good_a.manifest.json") << manifest_text("good_a", sha256sum(so), TORCH_VERSION_MINOR + 1);
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load(so.string());
  CHECK_FALSE(record.ok);
  CHECK(record.reason == cat("manifest ", (temp.path() / "good_a.manifest.json").string(), ": LibTorch ",
                             TORCH_VERSION_MAJOR, ".", kNextTorchMinor, " != host ", kHostTorch));
  CHECK(record.version == "9.9.9");
  CHECK_FALSE(is_mapped(so.string()));
  CHECK(registry.names().empty());
}

TEST_CASE("loader: a .so whose sha256 disagrees with its manifest is refused unopened", "[packages]") {
  test::TempDir temp("manifest_sha");
  const fs::path so = temp.path() / "good_a.so";
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, so);
  const std::string recorded = sha256sum(so);
  const std::string manifest = (temp.path() / "good_a.manifest.json").string();
  std::ofstream(manifest) << manifest_text("good_a", recorded, TORCH_VERSION_MINOR);
  std::ofstream(so, std::ios::app | std::ios::binary) << "x";  // changed after the manifest was written
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load(so.string());
  CHECK_FALSE(record.ok);
  CHECK(record.reason == cat("sha256 of ", so.string(), " is ", sha256sum(so), " but its manifest ", manifest, " says ",
                             recorded, " (file changed or corrupted)"));
  CHECK_FALSE(is_mapped(so.string()));
}

TEST_CASE("plugin directories writable by others, or owned by another user, are refused", "[packages]") {
  const unsigned me = ::geteuid();
  CHECK_FALSE(unsafe_permissions_reason("/d", 040755, me, me));
  CHECK_FALSE(unsafe_permissions_reason("/d", 040755, 0, me));  // root-owned system directories are fine
  CHECK(*unsafe_permissions_reason("/d", 040775, me, me) ==
        "/d is writable by group (mode 0775); anyone who can write there can run code in this process (chmod go-w /d)");
  // Group-writable is fine when the group is the owner's private group (umask 002 systems)...
  CHECK_FALSE(unsafe_permissions_reason("/d", 040775, me, me, true));
  // ...but others-writable never is.
  CHECK(unsafe_permissions_reason("/d", 040777, me, me, true)->rfind("/d is writable by others (mode 0777)", 0) == 0);
  CHECK(unsafe_permissions_reason("/d", 041777, me, me)->rfind("/d is writable by group and others (mode 1777)", 0) == 0);
  CHECK(unsafe_permissions_reason("/d", 040757, me, me)->rfind("/d is writable by others (mode 0757)", 0) == 0);
  CHECK(*unsafe_permissions_reason("/d", 040755, me + 1000, me == 0 ? 4242 : me) ==
        cat("/d is owned by uid ", me + 1000, ", not by this user (uid ", me == 0 ? 4242 : me,
            ") or root; plugins run as this user, so only they may own plugin files"));

  test::TempDir temp("unsafe_dirs");
  const std::string open_dir = temp.dir("open");
  fs::permissions(open_dir, fs::perms(0757));
  PluginSearchInputs inputs;
  inputs.plugin_dirs = {open_dir};
  Error e = error_of([&] { plugin_search_path(inputs); });
  CHECK(e.code() == ExitCode::kPlugin);
  CHECK(std::string(e.what()) == "--plugin-dir " + *unsafe_permissions_reason(open_dir, 040757, me, me));
  // Elsewhere in the search path an unsafe directory is skipped, with a warning.
  const std::string safe = temp.dir("safe");
  inputs.plugin_dirs = {};
  inputs.env_path = open_dir + ":" + safe;
  CHECK(plugin_search_path(inputs).size() == 1);
  CHECK(plugin_search_path(inputs).at(0).path == safe);

  if (me == 0) {  // only root can hand a directory to another user
    const std::string foreign = temp.dir("foreign");
    REQUIRE(::chown(foreign.c_str(), 4242, 4242) == 0);
    inputs.plugin_dirs = {foreign};
    e = error_of([&] { plugin_search_path(inputs); });
    CHECK(std::string(e.what()).find(foreign + " is owned by uid 4242, not by this user (uid 0) or root") !=
          std::string::npos);
    // Group-writable with a group that is not root's own (gid 4242 has no entry): refused.
    const std::string shared = temp.dir("shared");
    fs::permissions(shared, fs::perms(0775));
    REQUIRE(::chown(shared.c_str(), 0, 4242) == 0);
    inputs.plugin_dirs = {shared};
    e = error_of([&] { plugin_search_path(inputs); });
    CHECK(std::string(e.what()).rfind("--plugin-dir " + shared + " is writable by group (mode 0775)", 0) == 0);
  }

  // A plugin file others may write to is not opened either.
  const fs::path so = fs::path(safe) / "good_a.so";
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, so);
  fs::permissions(so, fs::perms(0666));
  Registry registry;
  PluginHost plugins(registry, this_host());
  const PluginRecord record = plugins.load(so.string());
  CHECK_FALSE(record.ok);
  // "group and others", or "others" where the file's group is this user's private group.
  CHECK(record.reason.rfind("refusing to open " + so.string() + " is writable by ", 0) == 0);
  CHECK(record.reason.find("others (mode 0666); anyone who can write there can run code in this process") !=
        std::string::npos);
  CHECK_FALSE(is_mapped(so.string()));

  // Installing into such a directory is refused too, before anything is copied.
  e = error_of([&] { install_plugin_package(SPECULATORS_FIXTURE_PACKAGE_GOOD_A, open_dir, this_host()); });
  CHECK(std::string(e.what()) == "refusing to install into " + *unsafe_permissions_reason(open_dir, 040757, me, me));
  CHECK(fs::is_empty(open_dir));
}

TEST_CASE("plugins command: usage errors exit 2, --help exits 0", "[packages]") {
  test::TempDir temp("plugins_cmd");
  const std::string dir = temp.dir("p");
  CHECK(run_plugins_command({"--help"}) == 0);
  CHECK(run_plugins_command({}) == 2);
  CHECK(run_plugins_command({"frobnicate", "--plugin-dir", dir}) == 2);
  CHECK(run_plugins_command({"install", "--plugin-dir", dir}) == 2);
  CHECK(run_plugins_command({"remove", "a", "b", "--plugin-dir", dir}) == 2);
  CHECK(run_plugins_command({"list", "--bogus"}) == 2);
  CHECK(run_plugins_command({"install", SPECULATORS_FIXTURE_PACKAGE_BAD_TORCH, "--plugin-dir", dir}) == 3);
  CHECK(run_plugins_command({"install", SPECULATORS_FIXTURE_PACKAGE_GOOD_A, "--plugin-dir", dir}) == 0);
  CHECK(run_plugins_command({"list", "--plugin-dir", dir}) == 0);
  CHECK(run_plugins_command({"remove", "good_a", "--plugin-dir=" + dir}) == 0);
  CHECK(fs::is_empty(dir));
}

TEST_CASE("user plugin directory: XDG_DATA_HOME, else HOME/.local/share", "[packages]") {
  const char* old_xdg = std::getenv("XDG_DATA_HOME");
  const char* old_home = std::getenv("HOME");
  const std::string saved_xdg = old_xdg ? old_xdg : "", saved_home = old_home ? old_home : "";
  ::setenv("XDG_DATA_HOME", "/xdg", 1);
  ::setenv("HOME", "/home/u", 1);
  CHECK(user_plugin_dir() == "/xdg/speculators/plugins");
  ::unsetenv("XDG_DATA_HOME");
  CHECK(user_plugin_dir() == "/home/u/.local/share/speculators/plugins");
  if (old_xdg) ::setenv("XDG_DATA_HOME", saved_xdg.c_str(), 1);
  if (old_home) ::setenv("HOME", saved_home.c_str(), 1); else ::unsetenv("HOME");
}

TEST_CASE("search path: the user plugin directory comes after SPECULATORS_PLUGIN_PATH, before the install dir",
          "[packages]") {
  test::TempDir temp("user_dir_order");
  PluginSearchInputs inputs;
  const std::string cli = temp.dir("cli"), env = temp.dir("env"), user = temp.dir("user");
  const std::string install = temp.dir(std::string("prefix/") + SPECULATORS_TEST_INSTALL_PLUGINDIR);
  inputs.plugin_dirs = {cli};
  inputs.env_path = env;
  inputs.user_dir = user;
  inputs.exe_dir = temp.dir("prefix/bin");
  std::vector<std::string> paths, origins;
  for (const auto& dir : plugin_search_path(inputs)) paths.push_back(dir.path), origins.push_back(dir.origin);
  CHECK(paths == std::vector<std::string>{cli, env, user, install});
  CHECK(origins == std::vector<std::string>{"--plugin-dir", "SPECULATORS_PLUGIN_PATH", "user", "install"});
  // A user directory that does not exist yet (nothing installed) is simply absent.
  inputs.user_dir = (temp.path() / "nothing").string();
  CHECK(plugin_search_path(inputs).size() == 3);
}
