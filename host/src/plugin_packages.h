// Binary plugin packages (docs/plugins.md, "Packages"): the manifest that sits next to every
// built plugin (<name>.manifest.json: name, version, plugin ABI, LibTorch, C++11 ABI, CUDA flag,
// sha256 of the .so), the checks the host runs on it without opening the .so, the safety rule
// for plugin directories, and `speculators-train plugins install|list|remove`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plugin_loader.h"

namespace speculators {

inline constexpr const char* kManifestSuffix = ".manifest.json";
inline constexpr const char* kManifestFormat = "speculators-plugin-manifest";

// What a manifest says (written by cmake/SpeculatorsPluginPackage.cmake).
struct PluginManifest {
  std::string path;     // the file it was read from
  std::string text;     // its bytes, copied verbatim on install
  std::string name;     // plugin name = file stem of the .so
  std::string version;
  std::string library;  // file name of the .so: always <name>.so
  std::string sha256;   // 64 lowercase hex digits
  std::string torch_version;  // e.g. "1.13.0"
  HostFingerprint fingerprint;  // plugin ABI, LibTorch major.minor, C++11 ABI, CUDA of the build
};

// <dir>/<stem>.manifest.json for <dir>/<stem>.so.
std::string plugin_manifest_path(const std::string& so_path);
// Parses a manifest. Throws Error(kPlugin) naming the file and the missing or bad key.
PluginManifest read_plugin_manifest(const std::string& path);
// The fingerprint checks of DESIGN §3 applied to a manifest (ABI major/minor, LibTorch
// major.minor, C++11 ABI, CUDA), then name == `file_stem` when given. One line, or nullopt.
std::optional<std::string> check_manifest(const PluginManifest& manifest, const HostFingerprint& host,
                                          const std::string& file_stem = "");
// nullopt when `so_path`'s sha256 equals the manifest's, else a one-line reason with both values.
std::optional<std::string> check_manifest_sha256(const PluginManifest& manifest, const std::string& so_path);

// Why a directory (or a plugin file) must not be trusted: it is writable by others, writable by
// a group other than the owner's private group, or owned by someone other than `user_uid` or
// root. Loading a plugin runs its code, so anyone who can write there could run code as this
// user. `group_private`: the file's group is its owner's user-private group (same name as the
// owner, no other members), as umask 002 systems create them; then only the owner can write.
std::optional<std::string> unsafe_permissions_reason(const std::string& path, unsigned mode, unsigned owner_uid,
                                                     unsigned user_uid, bool group_private = false);
// The same for a path on disk, with this process's effective uid and the group database.
// A path that cannot be stat()ed gives a reason too.
std::optional<std::string> unsafe_path_reason(const std::string& path);

// The per-user plugin directory: $XDG_DATA_HOME/speculators/plugins, or
// $HOME/.local/share/speculators/plugins; "" when neither variable is set. `plugins install`
// writes there by default and the search path includes it (after SPECULATORS_PLUGIN_PATH).
std::string user_plugin_dir();

// Installs a package (.tar.gz/.tgz made by speculators_add_plugin(... PACKAGE), or its .deb)
// into `dir`, creating it if needed: extracts it to a temporary directory, reads the one
// manifest, checks it against `host` and the .so's sha256, then copies the .so and the manifest
// in, each under a temporary name renamed into place. Nothing is written to `dir` when a check
// fails. Throws Error(kPlugin) with a one-line reason (kUsage for a missing package file).
PluginManifest install_plugin_package(const std::string& package, const std::string& dir,
                                      const HostFingerprint& host = HostFingerprint::current());

// One plugin found in a directory by `plugins list`.
struct InstalledPlugin {
  std::string name;
  std::string so_path;
  std::optional<PluginManifest> manifest;
  std::string status;  // "ok", or why the host would refuse it
};
// Every <name>.so and <name>.manifest.json in `dir`, by name, checked against `host` without
// loading anything.
std::vector<InstalledPlugin> list_installed_plugins(const std::string& dir,
                                                    const HostFingerprint& host = HostFingerprint::current());
std::string format_installed_plugins(const std::string& dir, const std::vector<InstalledPlugin>& plugins);
// Deletes <dir>/<name>.so and its manifest. Throws Error(kUsage) when neither exists.
void remove_installed_plugin(const std::string& name, const std::string& dir);

// `speculators-train plugins SUBCOMMAND ...` (install PACKAGE | list | remove NAME, each with
// [--plugin-dir DIR]); returns the exit code, errors are printed.
int run_plugins_command(const std::vector<std::string>& args);

}  // namespace speculators
