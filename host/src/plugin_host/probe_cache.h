// Probe results kept between runs (docs/plugins.md, "Probing in a child process"): a plugin whose
// file (path, size, mtime and sha256) and host fingerprint are unchanged since its last probe is
// not probed again. A plugin that registered in the child loads in the host directly; one that
// crashed or exited there is rejected with the same reason. Hangs and rejections by a check are
// never kept (a hang may be a loaded machine; a check may depend on the other plugins loaded).
// The cache is a JSON file in the user's cache directory; a damaged one is ignored and rewritten.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "plugin_host/fingerprint.h"

namespace speculators {

// SPECULATORS_PLUGIN_PROBE_CACHE: the cache file; "0" or "" turns the cache off.
inline constexpr const char* kPluginProbeCacheEnv = "SPECULATORS_PLUGIN_PROBE_CACHE";
// The outcome recorded for a plugin that registered in the probe child.
inline constexpr const char* kProbeOutcomeOk = "ok";

// What identifies one probe: the plugin's file and the host that probed it.
struct ProbeCacheKey {
  std::string path;  // canonical
  std::uintmax_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string sha256;
  std::string host;  // the host fingerprint as text
};

// The key of the plugin at `path` for `host`; nullopt when the file cannot be read.
std::optional<ProbeCacheKey> probe_cache_key(const std::string& path, const HostFingerprint& host);

class ProbeCache {
 public:
  // The file named by SPECULATORS_PLUGIN_PROBE_CACHE, else $XDG_CACHE_HOME/speculators/
  // plugin-probes.json, else ~/.cache/speculators/plugin-probes.json; "" when off or homeless.
  static std::string default_file();

  explicit ProbeCache(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }
  // The outcome recorded for exactly this key: kProbeOutcomeOk or a rejection reason.
  std::optional<std::string> find(const ProbeCacheKey& key) const;
  // Records `outcome` for `key` (dropping entries whose files are gone) and rewrites the file
  // atomically. A cache that cannot be written is left alone: probing works without it.
  void store(const ProbeCacheKey& key, const std::string& outcome) const;

 private:
  std::string file_;
};

}  // namespace speculators
