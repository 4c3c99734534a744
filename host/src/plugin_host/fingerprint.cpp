// See fingerprint.h.
#include "plugin_host/fingerprint.h"

#include <torch/version.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "plugin_host/sha256.h"
#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {

namespace fs = std::filesystem;

namespace {

bool is_hex_sha256(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::uint32_t manifest_uint(const Json& json, const std::string& key, const std::string& path) {
  if (!json.contains(key)) fail(cat("manifest ", path, ": missing key \"", key, "\""), ExitCode::kPlugin);
  const Json& value = json.at(key);
  if (!value.is_int() || value.as_int() < 0 || value.as_int() > 0xffffffffLL) {
    fail(cat("manifest ", path, ": \"", key, "\" must be a non-negative integer, got ", value.dump()),
         ExitCode::kPlugin);
  }
  return static_cast<std::uint32_t>(value.as_int());
}

std::string manifest_string(const Json& json, const std::string& key, const std::string& path) {
  if (!json.contains(key)) fail(cat("manifest ", path, ": missing key \"", key, "\""), ExitCode::kPlugin);
  const Json& value = json.at(key);
  if (!value.is_string()) {
    fail(cat("manifest ", path, ": \"", key, "\" must be a string, got ", value.dump()), ExitCode::kPlugin);
  }
  return value.as_string();
}

}  // namespace

bool valid_plugin_name(const std::string& name) {
  if (name.empty() || name.front() == '.' || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

HostFingerprint HostFingerprint::current() {
  HostFingerprint host;
  host.torch_major = TORCH_VERSION_MAJOR;
  host.torch_minor = TORCH_VERSION_MINOR;
#ifdef _GLIBCXX_USE_CXX11_ABI
  host.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
#endif
  host.cuda = SPECULATORS_WITH_CUDA;
  return host;
}

HostFingerprint HostFingerprint::of(const speculators_plugin_descriptor& d) {
  HostFingerprint plugin;
  plugin.abi_major = d.abi_major;
  plugin.abi_minor = d.abi_minor;
  plugin.torch_major = d.torch_major;
  plugin.torch_minor = d.torch_minor;
  plugin.cxx11_abi = d.cxx11_abi;
  plugin.cuda = d.cuda;
  return plugin;
}

std::optional<std::string> check_fingerprint(const HostFingerprint& d, const HostFingerprint& host) {
  if (d.abi_major != host.abi_major) return cat("plugin ABI major ", d.abi_major, " != host ", host.abi_major);
  // A newer minor may rely on tier-1 additions this host lacks; an older one only misses them.
  if (d.abi_minor > host.abi_minor) {
    return cat("plugin ABI minor ", d.abi_minor, " > host ", host.abi_minor, " (the plugin needs a newer host)");
  }
  if (d.torch_major != host.torch_major || d.torch_minor != host.torch_minor) {
    return cat("LibTorch ", d.torch_major, ".", d.torch_minor, " != host ", host.torch_major, ".", host.torch_minor);
  }
  if (d.cxx11_abi != host.cxx11_abi) return cat("C++11 ABI ", d.cxx11_abi, " != host ", host.cxx11_abi);
  // A CPU plugin runs on a CUDA host; a CUDA plugin needs CUDA symbols a CPU host does not have.
  if (d.cuda != 0 && host.cuda == 0) {
    return cat("CUDA plugin (cuda ", d.cuda, ") != host ", host.cuda, " (this host is CPU-only)");
  }
  return std::nullopt;
}

std::string plugin_manifest_path(const std::string& so_path) {
  fs::path path(so_path);
  return (path.parent_path() / (path.stem().string() + kManifestSuffix)).string();
}

std::string read_plugin_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(cat("cannot read ", path), ExitCode::kPlugin);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

PluginManifest read_plugin_manifest(const std::string& path) {
  return parse_plugin_manifest(read_plugin_file(path), path);
}

PluginManifest parse_plugin_manifest(const std::string& text, const std::string& path) {
  PluginManifest m;
  m.path = path;
  m.text = text;
  Json json;
  try {
    json = Json::parse(m.text, path);
  } catch (const Error& e) {
    fail(cat("manifest ", path, ": not valid JSON: ", e.what()), ExitCode::kPlugin);
  }
  if (!json.is_object()) fail(cat("manifest ", path, ": expected a JSON object"), ExitCode::kPlugin);
  const std::string format = manifest_string(json, "format", path);
  if (format != kManifestFormat) {
    fail(cat("manifest ", path, ": \"format\" is \"", format, "\", expected \"", kManifestFormat, "\""),
         ExitCode::kPlugin);
  }
  if (manifest_uint(json, "format_version", path) != 1) {
    fail(cat("manifest ", path, ": format_version ", json.at("format_version").dump(), " is not 1 (a newer SDK wrote it)"),
         ExitCode::kPlugin);
  }
  m.name = manifest_string(json, "name", path);
  if (!valid_plugin_name(m.name)) fail(cat("manifest ", path, ": bad plugin name \"", m.name, "\""), ExitCode::kPlugin);
  m.version = manifest_string(json, "version", path);
  m.library = manifest_string(json, "library", path);
  if (m.library != m.name + ".so") {
    fail(cat("manifest ", path, ": \"library\" is \"", m.library, "\", expected \"", m.name, ".so\""), ExitCode::kPlugin);
  }
  m.sha256 = manifest_string(json, "sha256", path);
  if (!is_hex_sha256(m.sha256)) {
    fail(cat("manifest ", path, ": \"sha256\" must be 64 lowercase hex digits, got \"", m.sha256, "\""),
         ExitCode::kPlugin);
  }
  m.torch_version = manifest_string(json, "torch_version", path);
  m.fingerprint.abi_major = manifest_uint(json, "plugin_abi_major", path);
  m.fingerprint.abi_minor = manifest_uint(json, "plugin_abi_minor", path);
  m.fingerprint.torch_major = manifest_uint(json, "torch_major", path);
  m.fingerprint.torch_minor = manifest_uint(json, "torch_minor", path);
  m.fingerprint.cxx11_abi = manifest_uint(json, "cxx11_abi", path);
  m.fingerprint.cuda = manifest_uint(json, "cuda", path);
  return m;
}

std::optional<std::string> check_manifest(const PluginManifest& manifest, const HostFingerprint& host,
                                          const std::string& file_stem) {
  if (auto why = check_fingerprint(manifest.fingerprint, host)) return why;
  if (!file_stem.empty() && manifest.name != file_stem) {
    return cat("name \"", manifest.name, "\" does not match file stem \"", file_stem, "\"");
  }
  return std::nullopt;
}

std::optional<std::string> check_manifest_sha256(const PluginManifest& manifest, const std::string& so_path) {
  const std::string actual = sha256_file_hex(so_path);
  if (actual == manifest.sha256) return std::nullopt;
  return cat("sha256 of ", so_path, " is ", actual, " but its manifest ", manifest.path, " says ", manifest.sha256,
             " (file changed or corrupted)");
}

}  // namespace speculators
