// See probe_cache.h.
#include "plugin_host/probe_cache.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "plugin_host/sha256.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCacheFormat = "speculators-plugin-probe-cache";
constexpr std::uintmax_t kMaxCacheBytes = std::uintmax_t{4} << 20;
constexpr std::size_t kMaxEntries = 1024;

std::string fingerprint_text(const HostFingerprint& h) {
  return cat("abi ", h.abi_major, ".", h.abi_minor, " torch ", h.torch_major, ".", h.torch_minor, " cxx11 ",
             h.cxx11_abi, " cuda ", h.cuda);
}

// The entries of the cache file; an empty object when it is missing or damaged (said when `warn`).
Json::Object read_entries(const std::string& file, bool warn) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  try {
    const Json cache = Json::read_file(file, kMaxCacheBytes);
    if (cache.is_object() && cache.get("format", Json()) == Json(kCacheFormat) && cache.contains("entries") &&
        cache.at("entries").is_object()) {
      return cache.at("entries").as_object();
    }
    if (warn) log::warn(cat("ignoring the plugin probe cache ", file, ": not a ", kCacheFormat, " file"));
  } catch (const Error& e) {
    if (warn) log::warn(cat("ignoring the plugin probe cache: ", e.what()));
  }
  return {};
}

bool entry_matches(const Json& entry, const ProbeCacheKey& key) {
  return entry.is_object() && entry.get("size", Json()) == Json(static_cast<std::int64_t>(key.size)) &&
         entry.get("mtime_ns", Json()) == Json(key.mtime_ns) && entry.get("sha256", Json()) == Json(key.sha256) &&
         entry.get("host", Json()) == Json(key.host) && entry.get("outcome", Json()).is_string();
}

}  // namespace

std::optional<ProbeCacheKey> probe_cache_key(const std::string& path, const HostFingerprint& host) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(path, ec);
  if (ec) return std::nullopt;
  struct stat st {};
  if (::stat(canonical.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  ProbeCacheKey key;
  key.path = canonical.string();
  key.size = static_cast<std::uintmax_t>(st.st_size);
  key.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  key.host = fingerprint_text(host);
  try {
    key.sha256 = sha256_file_hex(key.path);
  } catch (const Error&) {
    return std::nullopt;
  }
  return key;
}

std::string ProbeCache::default_file() {
  if (const char* env = std::getenv(kPluginProbeCacheEnv); env != nullptr) {
    const std::string value = env;
    return value == "0" ? "" : value;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return (fs::path(xdg) / "speculators" / "plugin-probes.json").string();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return (fs::path(home) / ".cache" / "speculators" / "plugin-probes.json").string();
  }
  return "";
}

std::optional<std::string> ProbeCache::find(const ProbeCacheKey& key) const {
  const Json::Object entries = read_entries(file_, true);
  const auto it = entries.find(key.path);
  if (it == entries.end() || !entry_matches(it->second, key)) return std::nullopt;
  return it->second.at("outcome").as_string();
}

void ProbeCache::store(const ProbeCacheKey& key, const std::string& outcome) const {
  Json::Object entries = read_entries(file_, false);  // find() has said what was wrong
  for (auto it = entries.begin(); it != entries.end();) {
    std::error_code ec;
    it = fs::exists(it->first, ec) ? std::next(it) : entries.erase(it);
  }
  if (entries.size() >= kMaxEntries) entries.clear();
  entries[key.path] = Json::object({{"size", static_cast<std::int64_t>(key.size)},
                                    {"mtime_ns", key.mtime_ns},
                                    {"sha256", key.sha256},
                                    {"host", key.host},
                                    {"outcome", outcome}});
  const Json cache = Json::object({{"format", kCacheFormat}, {"entries", Json(std::move(entries))}});
  try {
    std::error_code ec;
    fs::create_directories(fs::path(file_).parent_path(), ec);
    write_file_atomic(file_, cache.dump_python());
  } catch (const std::exception& e) {
    log::debug(cat("plugin probe cache not written: ", e.what()));
  }
}

}  // namespace speculators
