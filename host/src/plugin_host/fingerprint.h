// The build fingerprint of a plugin and of this host (plugin ABI, LibTorch major.minor, C++11 ABI,
// CUDA), the check that they fit, and the manifest that records a plugin's fingerprint and sha256
// next to its .so (docs/plugins.md, "Packages"). Both the loader (before it opens a .so) and the
// package installer (before it copies one) check plugins through this unit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "speculators/plugin/abi.h"

namespace speculators {

// The build fingerprint a plugin's descriptor must match.
struct HostFingerprint {
  std::uint32_t abi_major = SPECULATORS_PLUGIN_ABI_MAJOR;
  std::uint32_t abi_minor = SPECULATORS_PLUGIN_ABI_MINOR;
  std::uint32_t torch_major = 0;
  std::uint32_t torch_minor = 0;
  std::uint32_t cxx11_abi = 0;
  std::uint32_t cuda = 0;  // 1 if the host can run CUDA plugins
  // This executable's own values (torch/version.h, _GLIBCXX_USE_CXX11_ABI, SPECULATORS_WITH_CUDA).
  static HostFingerprint current();
  // The fingerprint a plugin's descriptor declares.
  static HostFingerprint of(const speculators_plugin_descriptor& d);
};

// The fingerprint checks (docs/plugins.md) shared by descriptors and manifests, in order: ABI major
// equal, ABI minor not newer, LibTorch major.minor equal, C++11 ABI equal, CUDA compatible.
// Returns the one-line reason of the first failure ("LibTorch 1.14 != host 1.13").
std::optional<std::string> check_fingerprint(const HostFingerprint& plugin, const HostFingerprint& host);

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

// The bytes of a plugin's file (its manifest, a package's build log). Throws Error(kPlugin)
// naming the path when it cannot be read.
std::string read_plugin_file(const std::string& path);

// <dir>/<stem>.manifest.json for <dir>/<stem>.so.
std::string plugin_manifest_path(const std::string& so_path);
// Parses a manifest. Throws Error(kPlugin) naming the file and the missing or bad key.
PluginManifest read_plugin_manifest(const std::string& path);
// The same for a manifest's bytes, with `path` naming where they came from in the messages.
PluginManifest parse_plugin_manifest(const std::string& text, const std::string& path);
// The fingerprint checks applied to a manifest (ABI major/minor, LibTorch
// major.minor, C++11 ABI, CUDA), then name == `file_stem` when given. One line, or nullopt.
std::optional<std::string> check_manifest(const PluginManifest& manifest, const HostFingerprint& host,
                                          const std::string& file_stem = "");
// nullopt when `so_path`'s sha256 equals the manifest's, else a one-line reason with both values.
std::optional<std::string> check_manifest_sha256(const PluginManifest& manifest, const std::string& so_path);

// A plugin name is a file stem: letters, digits, "_", "-", "." and not starting with ".".
bool valid_plugin_name(const std::string& name);

}  // namespace speculators
