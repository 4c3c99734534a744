// Installing, listing and removing binary plugin packages (docs/plugins.md, "Packages"). Nothing
// here opens a .so: every check reads the manifest and the file's bytes only (fingerprint.h), so a
// plugin built for another host is refused before any of its code runs. The `plugins`
// subcommand's argument handling is in tools/plugin_commands.cpp.
#include "plugin_host/plugin_packages.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "plugin_host/sha256.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

extern char** environ;

namespace speculators {

namespace fs = std::filesystem;

namespace {

// Runs argv[0] (searched in PATH) without a shell; stdout and stderr go to `log_path`.
// Returns the exit status, or -1 when it could not be started.
int run_quietly(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

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

// Unpacks a .tar.gz/.tgz (tar) or a .deb (dpkg-deb -x) into `into`.
void extract_package(const std::string& package, const fs::path& into) {
  const std::string log = (into.parent_path() / (into.filename().string() + ".log")).string();
  const auto ends_with = [&](const std::string& suffix) {
    return package.size() >= suffix.size() && package.compare(package.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::vector<std::string> argv;
  if (ends_with(".deb")) {
    argv = {"dpkg-deb", "-x", package, into.string()};
  } else if (ends_with(".tar.gz") || ends_with(".tgz")) {
    argv = {"tar", "-xzf", package, "-C", into.string(), "--no-same-owner", "--no-same-permissions"};
  } else {
    fail_usage(cat("plugin package ", package, ": expected a .tar.gz, .tgz or .deb file"));
  }
  const int rc = run_quietly(argv, log);
  if (rc != 0) {
    std::string why = rc < 0 ? cat("could not run ", argv[0]) : read_plugin_file(log);
    std::replace(why.begin(), why.end(), '\n', ' ');
    fail(cat("plugin package ", package, ": cannot unpack (", argv[0], "): ", why), ExitCode::kPlugin);
  }
}

// The one manifest inside an unpacked package (top level for a .tar.gz, under the plugin
// directory for a .deb).
fs::path find_manifest(const fs::path& root, const std::string& package) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    // symlink_status: a link in a package is never followed out of it.
    if (fs::is_regular_file(entry.symlink_status()) && name.size() > std::string(kManifestSuffix).size() &&
        name.compare(name.size() - std::string(kManifestSuffix).size(), std::string::npos, kManifestSuffix) == 0) {
      found.push_back(entry.path());
    }
  }
  if (found.size() != 1) {
    fail(cat("plugin package ", package, ": expected exactly one *", kManifestSuffix, ", found ", found.size()),
         ExitCode::kPlugin);
  }
  return found.front();
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
  std::error_code ec;
  if (!fs::is_regular_file(package, ec)) fail_usage(cat("plugin package ", package, ": no such file"));
  const fs::path package_path = fs::absolute(package);
  ScratchDir scratch(fs::temp_directory_path());
  const fs::path unpacked = scratch.path() / "unpacked";
  fs::create_directory(unpacked);
  extract_package(package_path.string(), unpacked);

  // Everything is checked before anything is copied.
  const fs::path manifest_file = find_manifest(unpacked, package);
  PluginManifest manifest = read_plugin_manifest(manifest_file.string());
  if (auto why = check_manifest(manifest, host)) {
    fail(cat("plugin package ", package, " (", manifest.name, " ", manifest.version, ") does not fit this host: ", *why),
         ExitCode::kPlugin);
  }
  const fs::path so = manifest_file.parent_path() / manifest.library;
  if (!fs::is_regular_file(fs::symlink_status(so, ec))) {
    fail(cat("plugin package ", package, ": ", manifest.library, " is missing or not a regular file"), ExitCode::kPlugin);
  }
  if (const std::string actual = sha256_file_hex(so.string()); actual != manifest.sha256) {
    fail(cat("plugin package ", package, ": ", manifest.library, " does not match its manifest: sha256 ", actual,
             " != ", manifest.sha256, " (corrupted or altered package)"),
         ExitCode::kPlugin);
  }

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
