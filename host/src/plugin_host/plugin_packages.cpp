// Installing, listing and removing binary plugin packages (docs/plugins.md, "Packages"). Nothing
// here opens a .so: every check reads the manifest and the file's bytes only (fingerprint.h), so a
// plugin built for another host is refused before any of its code runs. The `plugins`
// subcommand's argument handling is in tools/plugin_commands.cpp.
#include "plugin_host/plugin_packages.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>

#include "plugin_host/package_archive.h"
#include "plugin_host/sha256.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {

namespace fs = std::filesystem;

namespace {

// A temporary directory removed when this goes out of scope.
class ScratchDir {
 public:
  explicit ScratchDir(const fs::path& parent) {
    std::string pattern = (parent / ".speculators-plugin.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      fail(cat("cannot create a temporary directory in ", parent.string()), ExitCode::kPlugin);
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

constexpr std::uint64_t kMaxManifestBytes = 1 << 20;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_entry(const PackageEntry& entry, const ByteSource& content, const std::string& package) {
  std::string text(static_cast<std::size_t>(entry.size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const std::size_t k = content(text.data() + got, text.size() - got);
    if (k == 0) fail(cat("plugin package ", package, ": truncated archive (in '", entry.path, "')"), ExitCode::kPlugin);
    got += k;
  }
  return text;
}

// First pass over the package: every entry is listed and checked (package_archive.h) and the one
// manifest (top level for a .tar.gz, under the plugin directory for a .deb) is read into memory.
// Nothing is written. Returns the manifest's path in the package and its bytes.
std::pair<std::string, std::string> list_and_read_manifest(const std::string& package,
                                                           std::vector<PackageEntry>& entries) {
  std::vector<std::pair<std::string, std::string>> manifests;
  entries = read_package(package, [&](const PackageEntry& entry, const ByteSource& content) {
    const std::string file = fs::path(entry.path).filename().string();
    if (file.size() <= std::string(kManifestSuffix).size() || !ends_with(file, kManifestSuffix)) return;
    if (entry.size > kMaxManifestBytes) {
      fail(cat("plugin package ", package, ": manifest '", entry.path, "' is ", entry.size, " bytes (limit ",
               kMaxManifestBytes, ")"), ExitCode::kPlugin);
    }
    manifests.emplace_back(entry.path, read_entry(entry, content, package));
  });
  if (manifests.size() != 1) {
    fail(cat("plugin package ", package, ": expected exactly one *", kManifestSuffix, ", found ", manifests.size()),
         ExitCode::kPlugin);
  }
  return manifests.front();
}

// Second pass: only the entry `wanted` is written, to `to` (its size was bounded by the first).
void extract_entry(const std::string& package, const std::string& wanted, const fs::path& to) {
  bool written = false;
  read_package(package, [&](const PackageEntry& entry, const ByteSource& content) {
    if (entry.path != wanted) return;
    std::ofstream out(to, std::ios::binary);
    std::vector<char> buffer(1 << 16);
    for (std::size_t k; (k = content(buffer.data(), buffer.size())) > 0;) out.write(buffer.data(), static_cast<std::streamsize>(k));
    if (!out.flush()) fail(cat("cannot write ", to.string()), ExitCode::kPlugin);
    written = true;
  });
  if (!written) fail(cat("plugin package ", package, ": '", wanted, "' changed while it was read"), ExitCode::kPlugin);
}

// Copies `from` to `to` through a temporary file in to's directory and a rename, so that a
// reader sees either the old file or the whole new one.
void copy_atomically(const fs::path& from, const fs::path& to, fs::perms perms) {
  const fs::path temp = to.parent_path() / cat(".", to.filename().string(), ".tmp.", getpid());
  std::error_code ec;
  fs::copy_file(from, temp, fs::copy_options::overwrite_existing, ec);
  if (ec) fail(cat("cannot write ", temp.string(), ": ", ec.message()), ExitCode::kPlugin);
  fs::permissions(temp, perms, ec);
  if (int fd = ::open(temp.c_str(), O_RDONLY); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(temp, to, ec);
  if (ec) {
    fs::remove(temp);
    fail(cat("cannot move ", temp.string(), " to ", to.string(), ": ", ec.message()), ExitCode::kPlugin);
  }
}

}  // namespace

PluginManifest install_plugin_package(const std::string& package, const std::string& dir,
                                      const HostFingerprint& host) {
  std::error_code package_ec;
  if (!fs::is_regular_file(package, package_ec)) fail_usage(cat("plugin package ", package, ": no such file"));
  // Everything is checked before anything is written: the listing (paths, types, sizes), then the
  // manifest against this host, then the .so's sha256.
  std::vector<PackageEntry> entries;
  const auto [manifest_entry, manifest_text] = list_and_read_manifest(package, entries);
  // Parsed from memory, so that a message names the package and not a temporary copy.
  PluginManifest manifest = parse_plugin_manifest(manifest_text, cat(manifest_entry, " in plugin package ", package));
  ScratchDir scratch(fs::temp_directory_path());
  const fs::path manifest_file = scratch.path() / fs::path(manifest_entry).filename();
  {
    std::ofstream out(manifest_file, std::ios::binary);
    out << manifest_text;
    if (!out.flush()) fail(cat("cannot write ", manifest_file.string()), ExitCode::kPlugin);
  }
  if (auto why = check_manifest(manifest, host)) {
    fail(cat("plugin package ", package, " (", manifest.name, " ", manifest.version, ") does not fit this host: ", *why),
         ExitCode::kPlugin);
  }
  const std::string parent = fs::path(manifest_entry).parent_path().string();
  const std::string library_entry = parent.empty() ? manifest.library : parent + "/" + manifest.library;
  const bool listed = std::any_of(entries.begin(), entries.end(), [&](const PackageEntry& e) {
    return e.path == library_entry && !e.directory;
  });
  if (!listed) {
    fail(cat("plugin package ", package, ": ", manifest.library, " is missing or not a regular file"), ExitCode::kPlugin);
  }
  const fs::path so = scratch.path() / manifest.library;
  extract_entry(package, library_entry, so);
  if (const std::string actual = sha256_file_hex(so.string()); actual != manifest.sha256) {
    fail(cat("plugin package ", package, ": ", manifest.library, " does not match its manifest: sha256 ", actual,
             " != ", manifest.sha256, " (corrupted or altered package)"),
         ExitCode::kPlugin);
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) fail(cat("cannot create plugin directory ", dir, ": ", ec.message()), ExitCode::kPlugin);
  if (auto why = unsafe_path_reason(dir)) fail(cat("refusing to install into ", *why), ExitCode::kPlugin);
  const fs::path target_so = fs::path(dir) / manifest.library;
  const fs::path target_manifest = fs::path(dir) / (manifest.name + kManifestSuffix);
  // The .so first: until the manifest follows, an old manifest disagrees with the new .so's
  // sha256 and the host refuses the pair rather than load a mismatch.
  using P = fs::perms;
  copy_atomically(so, target_so, P::owner_read | P::owner_write | P::group_read | P::others_read);
  if (auto why = check_manifest_sha256(manifest, target_so.string())) fail(*why, ExitCode::kPlugin);
  copy_atomically(manifest_file, target_manifest, P::owner_read | P::owner_write | P::group_read | P::others_read);
  manifest.path = target_manifest.string();
  return manifest;
}

std::vector<InstalledPlugin> list_installed_plugins(const std::string& dir, const HostFingerprint& host) {
  std::map<std::string, InstalledPlugin> by_name;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    const std::string suffix = kManifestSuffix;
    std::string name;
    if (file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name = file.substr(0, file.size() - suffix.size());
    } else if (file.size() > 3 && file.compare(file.size() - 3, 3, ".so") == 0) {
      name = file.substr(0, file.size() - 3);
    } else {
      continue;
    }
    if (name.empty() || name.front() == '.') continue;  // an install in progress
    InstalledPlugin& plugin = by_name[name];
    plugin.name = name;
    plugin.so_path = (fs::path(dir) / (name + ".so")).string();
  }
  if (ec) fail(cat("cannot list plugin directory ", dir, ": ", ec.message()), ExitCode::kUsage);
  std::vector<InstalledPlugin> out;
  for (auto& [name, plugin] : by_name) {
    const std::string manifest_path = plugin_manifest_path(plugin.so_path);
    if (!fs::exists(plugin.so_path)) {
      plugin.status = cat("missing ", name, ".so (only its manifest is there)");
    } else if (!fs::exists(manifest_path)) {
      plugin.status = "no manifest (checked from its descriptor when loaded)";
    } else {
      try {
        plugin.manifest = read_plugin_manifest(manifest_path);
        if (auto why = check_manifest(*plugin.manifest, host, name)) {
          plugin.status = "incompatible: " + *why;
        } else if (auto bad = check_manifest_sha256(*plugin.manifest, plugin.so_path)) {
          plugin.status = "sha256 mismatch: " + *bad;
        } else {
          plugin.status = "ok";
        }
      } catch (const Error& e) {
        plugin.status = cat("bad manifest: ", e.what());
      }
    }
    out.push_back(std::move(plugin));
  }
  return out;
}

std::string format_installed_plugins(const std::string& dir, const std::vector<InstalledPlugin>& plugins) {
  std::string out = cat("plugins in ", dir, ":\n");
  if (plugins.empty()) return out + "  (none)\n";
  for (const auto& p : plugins) {
    out += cat("  ", p.name);
    if (p.manifest) {
      const PluginManifest& m = *p.manifest;
      out += cat(" ", m.version, "  plugin ABI ", m.fingerprint.abi_major, ".", m.fingerprint.abi_minor,
                 "  LibTorch ", m.torch_version, "  C++11 ABI ", m.fingerprint.cxx11_abi,
                 "  ", m.fingerprint.cuda ? "CUDA" : "CPU", "  sha256 ", m.sha256.substr(0, 12));
    }
    out += cat("  ", p.status, "\n");
  }
  return out;
}

void remove_installed_plugin(const std::string& name, const std::string& dir) {
  if (!valid_plugin_name(name)) fail_usage(cat("plugins remove: \"", name, "\" is not a plugin name"));
  if (!fs::is_directory(dir)) fail_usage(cat("plugins remove: ", dir, " is not a directory"));
  const fs::path so = fs::path(dir) / (name + ".so");
  const fs::path manifest = fs::path(dir) / (name + kManifestSuffix);
  std::error_code ec;
  const bool had_so = fs::remove(so, ec);
  if (ec) fail(cat("cannot remove ", so.string(), ": ", ec.message()), ExitCode::kPlugin);
  const bool had_manifest = fs::remove(manifest, ec);
  if (ec) fail(cat("cannot remove ", manifest.string(), ": ", ec.message()), ExitCode::kPlugin);
  if (!had_so && !had_manifest) {
    std::string installed;
    for (const auto& p : list_installed_plugins(dir)) installed += (installed.empty() ? "" : ", ") + p.name;
    fail_usage(cat("plugins remove: no plugin \"", name, "\" in ", dir, " (installed: ",
                   installed.empty() ? "none" : installed, ")"));
  }
}

}  // namespace speculators
