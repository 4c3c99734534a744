// The plugin host: where plugins are searched for, the checked loading sequence of docs/plugins.md,
// and the text of `--list-plugins` and `--describe`. It owns the dlopen handles, which are never
// closed (a registered algorithm's code and vtables must outlive every object it created), and
// it reports every rejected plugin as a record with a one-line reason instead of stopping.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plugin_host/fingerprint.h"
#include "plugin_host/probe_cache.h"
#include "speculators/algorithm.h"
#include "speculators/plugin/abi.h"
#include "speculators/registry.h"

namespace speculators {

class ProbeChannel;

// The environment variable holding extra plugin directories, colon-separated.
inline constexpr const char* kPluginPathEnv = "SPECULATORS_PLUGIN_PATH";

// One directory of the search path and why it is there.
struct PluginDir {
  std::string path;
  std::string origin;  // "--plugin-dir", "SPECULATORS_PLUGIN_PATH", "install", "build tree"
};

// What the search path is computed from; plugin_search_inputs() fills it from this process.
struct PluginSearchInputs {
  std::vector<std::string> plugin_dirs;  // --plugin-dir values, in command-line order
  std::optional<std::string> env_path;   // SPECULATORS_PLUGIN_PATH, unset = nullopt
  std::string user_dir;                  // the per-user plugin directory ("" = none)
  std::string exe_dir;                   // directory of the running executable ("" = unknown)
};

// The search path, highest precedence first:
//   1. each --plugin-dir (an entry that is not a directory is an Error, ExitCode::kUsage);
//   2. each non-empty entry of SPECULATORS_PLUGIN_PATH that is a directory (others are skipped);
//   3. the user plugin directory (user_plugin_dir(), where `plugins install` writes), if it exists;
//   4. <exe_dir>/../<SPECULATORS_INSTALL_PLUGINDIR> (lib/speculators/plugins), if it exists;
//   5. the build tree's plugin directory, when the executable runs from the build tree: the
//      configured SPECULATORS_BUILD_PLUGIN_DIR if exe_dir is that build's bin/, otherwise
//      <exe_dir>/../plugins if it exists (a build tree that was moved).
// A directory that appears twice (same canonical path) is kept at its first position only.
// A directory writable by group or others, or owned by another user than this one or root, is
// refused (loading a plugin runs its code): a --plugin-dir is an Error (ExitCode::kPlugin), any
// other is skipped with a warning.
std::vector<PluginDir> plugin_search_path(const PluginSearchInputs& inputs);
// Inputs for this process: the given --plugin-dir values, getenv(SPECULATORS_PLUGIN_PATH),
// user_plugin_dir() and the directory of /proc/self/exe.
PluginSearchInputs plugin_search_inputs(const std::vector<std::string>& plugin_dirs);
// Directory of the running executable (from /proc/self/exe), or "" if it cannot be read.
std::string executable_dir();

// A `<stem>.so` file found in a search directory.
struct PluginCandidate {
  std::string stem;         // file name without ".so": the plugin name it must declare
  std::string path;
  std::string origin;       // PluginDir::origin of its directory
  std::string shadowed_by;  // path of the same stem in an earlier directory, "" if none
};

// Every regular file named *.so in each directory, sorted by file name within a directory,
// directories in search order. A stem already seen in an earlier directory is returned with
// shadowed_by set (and is not loaded by PluginHost::load_all).
std::vector<PluginCandidate> discover_plugins(const std::vector<PluginDir>& dirs);

// The number of descriptor bytes this host reads: a smaller struct_size is refused.
inline constexpr std::size_t kDescriptorBytesRead =
    offsetof(speculators_plugin_descriptor, register_fn) + sizeof(speculators_register_fn);

// The checks (docs/plugins.md, "The checks, in order") that only need the descriptor, in order:
// struct size, ABI major and minor, LibTorch major.minor, C++11 ABI, CUDA flag, name == file stem.
// Returns the one-line reason of the first failure, or nullopt when the descriptor fits this host.
std::optional<std::string> check_descriptor(const speculators_plugin_descriptor& descriptor,
                                            const HostFingerprint& host, const std::string& file_stem);

enum class PluginStatus { kOk, kRejected, kShadowed };

// What the host knows about one .so: one line of --list-plugins.
struct PluginRecord {
  std::string name;     // the descriptor's name once readable, otherwise the file stem
  std::string version;  // the descriptor's version, "" if never read
  std::string path;
  bool ok = false;
  PluginStatus status = PluginStatus::kRejected;
  std::string reason;   // why it was rejected or shadowed; "" when ok
  std::string manifest_path;  // <stem>.manifest.json checked before opening the .so, "" if none

  // Descriptor fields, valid when has_descriptor (the entry point returned a large enough struct).
  bool has_descriptor = false;
  std::uint32_t struct_size = 0;
  HostFingerprint fingerprint;  // plugin ABI, LibTorch, C++11 ABI and CUDA it declares
  std::string build_info;
  std::vector<std::string> algorithms;  // what it registered (only when ok)
};

// Loads plugins into a Registry through the checks of docs/plugins.md. Each plugin is first
// probed in a child process (plugin_probe.h) and opened here only when the child loaded and
// registered it; a plugin that crashes, aborts or hangs there is rejected. A probe whose result is
// in the probe cache (probe_cache.h) for the same file and host is not run again. Registration goes into a
// staging registry first and is merged only if the register function succeeded and none of its
// names clashes, so a rejected plugin leaves nothing behind. Handles are never dlclosed.
class PluginHost {
 public:
  explicit PluginHost(Registry& registry, HostFingerprint host = HostFingerprint::current());

  // Runs the checks on one .so and registers it when they pass. Loading a path that was already
  // loaded (same canonical path) returns its first record and changes nothing.
  PluginRecord load(const std::string& path);
  // Loads every candidate in order; shadowed ones are recorded, not opened.
  void load_all(const std::vector<PluginCandidate>& candidates);
  // Makes `algorithm` available: loads the candidate whose stem is `algorithm` (the usual case,
  // one .so per algorithm) or, when there is none, every candidate. Throws Error(kPlugin) with the
  // rejection reason when that plugin was rejected, Error(kUsage) naming the registered
  // algorithms and searched plugins when the name is still unknown.
  const Registry::Entry& load_for_algorithm(const std::string& algorithm,
                                            const std::vector<PluginCandidate>& candidates);

  // Probing in a child (on unless SPECULATORS_PLUGIN_PROBE=0) and how long a child may take
  // (SPECULATORS_PLUGIN_PROBE_TIMEOUT seconds, default 10).
  void set_probe(bool enabled) { probe_ = enabled; }
  void set_probe_timeout(std::chrono::milliseconds timeout) { probe_timeout_ = timeout; }
  // Where probe results are kept between runs (probe_cache.h); "" keeps none.
  void set_probe_cache(std::string file) { probe_cache_ = ProbeCache(std::move(file)); }

  const std::vector<PluginRecord>& records() const { return records_; }
  Registry& registry() { return registry_; }

 private:
  // What is checked without opening the file: its permissions and, when present, its
  // manifest (fingerprint and sha256). Fills record.reason and returns false on a failure.
  bool check_before_open(const std::string& path, PluginRecord& record);
  // Runs the sequence on `path`; fills `record` and returns true when registered.
  bool load_checked(const std::string& path, PluginRecord& record);
  // Runs load_checked in a child first (plugin_probe.cpp); loads here only if it succeeded there.
  bool probe_then_load(const std::string& path, PluginRecord& record);
  // Tells the probe child's parent which step runs now (no-op outside a probe child).
  void mark_phase(const char* phase) const;
  bool register_plugin(const speculators_plugin_descriptor& descriptor, const std::string& path,
                       PluginRecord& record);

  Registry& registry_;
  HostFingerprint host_;
  std::vector<PluginRecord> records_;
  std::map<std::string, std::size_t> by_canonical_path_;  // index into records_
  std::vector<void*> handles_;  // never closed: see the top of this file
  bool probe_ = true;
  std::chrono::milliseconds probe_timeout_;
  ProbeCache probe_cache_;
  const ProbeChannel* probe_channel_ = nullptr;  // set in a probe child only
};

// `--list-plugins`: one line per record, columns aligned: name, version, path, and `ok`,
// `rejected: <reason>` or `shadowed by <path>`. "(no plugins found)" when empty.
std::string format_plugin_list(const std::vector<PluginRecord>& records);
// The search path, one directory a line with its origin (for --list-plugins).
std::string format_search_path(const std::vector<PluginDir>& dirs);

// A record as one line per field ("key\tvalue"), and back: what a probe child sends. Values are
// made one line first.
std::string serialize_plugin_record(const PluginRecord& record);
PluginRecord parse_plugin_record(const std::string& text);

// `--describe NAME`: the algorithm's name and description, then each option of its schema with
// its flag (bools as `--x / --no-x`), type, default, choices, help and YAML key.
std::string describe_algorithm(const Algorithm& algorithm);

}  // namespace speculators
