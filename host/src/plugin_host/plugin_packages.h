// Binary plugin packages (docs/plugins.md, "Packages"): the manifest that sits next to every
// built plugin (<name>.manifest.json: name, version, plugin ABI, LibTorch, C++11 ABI, CUDA flag,
// sha256 of the .so), the checks the host runs on it without opening the .so, the safety rule
// for plugin directories, and `speculators-train plugins install|list|remove`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plugin_host/fingerprint.h"
#include "plugin_host/plugin_dirs.h"

namespace speculators {

// Installs a package (.tar.gz/.tgz made by speculators_add_plugin(... PACKAGE), or its .deb)
// into `dir`, creating it if needed: lists the archive without unpacking it (package_archive.h:
// only regular files and directories with relative paths, bounded count and size), reads the one
// manifest, checks it against `host`, unpacks only the .so to a temporary directory and checks
// its sha256, then copies the .so and the manifest in, each under a temporary name renamed into
// place. Nothing is written to `dir` when a check fails. Throws Error(kPlugin) with a one-line reason (kUsage for a missing package file).
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
