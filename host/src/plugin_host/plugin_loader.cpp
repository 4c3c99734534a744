// The plugin host (docs/plugins.md): search path, discovery, and the checked loading sequence,
// which starts with what can be checked without opening the .so (permissions: plugin_dirs.h; its
// manifest's fingerprint and sha256: fingerprint.h). Every failure becomes one line on the
// plugin's record that names both the plugin's value and the host's; the host keeps going with
// the plugins that passed. Text output for --list-plugins and --describe lives in
// plugin_listing.cpp.
#include "plugin_host/plugin_loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <set>
#include <system_error>

#include "plugin_host/plugin_dirs.h"
#include "plugin_host/plugin_probe.h"
#include "speculators/error.h"
#include "speculators/log.h"

#ifndef SPECULATORS_INSTALL_PLUGINDIR
#define SPECULATORS_INSTALL_PLUGINDIR "lib/speculators/plugins"
#endif
#ifndef SPECULATORS_BUILD_PLUGIN_DIR
#define SPECULATORS_BUILD_PLUGIN_DIR ""
#endif

namespace speculators {

namespace fs = std::filesystem;

namespace {

// Size of the buffer a register function may write its error into.
constexpr std::size_t kRegisterErrorSize = 4096;

bool is_existing_directory(const fs::path& path) {
  std::error_code ec;
  return !path.empty() && fs::is_directory(path, ec);
}

// The canonical form used to compare directories and files; falls back to a normalised absolute
// path for something that does not exist.
std::string canonical_key(const fs::path& path) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return fs::absolute(path).lexically_normal().string();
  return canonical.string();
}

// "foo.so" -> "foo": the name the descriptor must declare.
std::string file_stem(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  const std::string suffix = ".so";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name.resize(name.size() - suffix.size());
  }
  return name;
}

// A reason must stay one line even when a plugin's error text has several.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

std::vector<std::string> split_path_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(':', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Adds directories in precedence order, skipping one already present under another spelling.
class SearchPathBuilder {
 public:
  // A directory others can write to is skipped (the caller refuses an explicit --plugin-dir
  // before it gets here).
  void add(const fs::path& path, const char* origin) {
    std::string key = canonical_key(path);
    if (!seen_.insert(key).second) return;
    if (auto why = unsafe_path_reason(key)) {
      log::warn(cat("skipping plugin directory (", origin, "): ", *why));
      return;
    }
    dirs_.push_back(PluginDir{key, origin});
  }
  std::vector<PluginDir> take() { return std::move(dirs_); }

 private:
  std::set<std::string> seen_;
  std::vector<PluginDir> dirs_;
};

// The directories next to the executable: the install layout, then the build tree.
void add_executable_relative(const std::string& exe_dir_text, SearchPathBuilder& builder) {
  if (exe_dir_text.empty()) return;
  const fs::path exe_dir(exe_dir_text);
  const fs::path install(SPECULATORS_INSTALL_PLUGINDIR);
  const fs::path install_dir = install.is_absolute() ? install : exe_dir / ".." / install;
  if (is_existing_directory(install_dir)) builder.add(install_dir, "install");

  // The configured build tree, when this executable is that build's bin/.
  const fs::path build_plugins(SPECULATORS_BUILD_PLUGIN_DIR);
  if (!build_plugins.empty() && is_existing_directory(build_plugins) &&
      canonical_key(exe_dir) == canonical_key(build_plugins.parent_path() / "bin")) {
    builder.add(build_plugins, "build tree");
  }
  // A build tree that was moved: bin/ next to plugins/.
  const fs::path sibling = exe_dir / ".." / "plugins";
  if (is_existing_directory(sibling)) builder.add(sibling, "build tree");
}

void copy_descriptor_fields(const speculators_plugin_descriptor& d, PluginRecord& record) {
  record.has_descriptor = true;
  record.fingerprint = HostFingerprint::of(d);
  if (d.name != nullptr) record.name = d.name;
  record.version = d.version != nullptr ? d.version : "";
  record.build_info = d.build_info != nullptr ? d.build_info : "";
}

}  // namespace

std::vector<PluginDir> plugin_search_path(const PluginSearchInputs& inputs) {
  SearchPathBuilder builder;
  for (const auto& dir : inputs.plugin_dirs) {
    if (!is_existing_directory(dir)) fail_usage(cat("--plugin-dir ", dir, ": not a directory"));
    if (auto why = unsafe_path_reason(dir)) fail(cat("--plugin-dir ", *why), ExitCode::kPlugin);
    builder.add(dir, "--plugin-dir");
  }
  if (inputs.env_path) {
    for (const auto& dir : split_path_list(*inputs.env_path)) {
      if (is_existing_directory(dir)) builder.add(dir, kPluginPathEnv);
    }
  }
  if (is_existing_directory(inputs.user_dir)) builder.add(inputs.user_dir, "user");
  add_executable_relative(inputs.exe_dir, builder);
  return builder.take();
}

std::string executable_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return exe.parent_path().string();
}

PluginSearchInputs plugin_search_inputs(const std::vector<std::string>& plugin_dirs) {
  PluginSearchInputs inputs;
  inputs.plugin_dirs = plugin_dirs;
  if (const char* env = std::getenv(kPluginPathEnv)) inputs.env_path = std::string(env);
  inputs.user_dir = user_plugin_dir();
  inputs.exe_dir = executable_dir();
  return inputs;
}

std::vector<PluginCandidate> discover_plugins(const std::vector<PluginDir>& dirs) {
  std::vector<PluginCandidate> out;
  std::map<std::string, std::string> first_by_stem;
  for (const auto& dir : dirs) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir.path, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& path = it->path();
      const std::string name = path.filename().string();
      std::error_code file_ec;
      if (name.size() > 3 && file_stem(name) != name && fs::is_regular_file(path, file_ec)) {
        files.push_back(path);
      }
    }
    if (ec) fail(cat("cannot list plugin directory ", dir.path, " (", dir.origin, "): ", ec.message()), ExitCode::kPlugin);
    std::sort(files.begin(), files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    for (const auto& path : files) {
      PluginCandidate candidate{file_stem(path.string()), path.string(), dir.origin, ""};
      auto [it, inserted] = first_by_stem.emplace(candidate.stem, candidate.path);
      if (!inserted) candidate.shadowed_by = it->second;
      out.push_back(std::move(candidate));
    }
  }
  return out;
}

std::optional<std::string> check_descriptor(const speculators_plugin_descriptor& d, const HostFingerprint& host,
                                            const std::string& file_stem) {
  // Nothing past struct_size may be read before this check.
  if (d.struct_size < kDescriptorBytesRead) {
    return cat("descriptor struct_size ", d.struct_size, " < ", kDescriptorBytesRead, " bytes this host reads");
  }
  if (auto why = check_fingerprint(HostFingerprint::of(d), host)) return why;
  if (d.name == nullptr) return std::string("descriptor name is null");
  if (file_stem != d.name) return cat("name \"", d.name, "\" does not match file stem \"", file_stem, "\"");
  if (d.register_fn == nullptr) return std::string("descriptor has no register function");
  return std::nullopt;
}

PluginHost::PluginHost(Registry& registry, HostFingerprint host)
    : registry_(registry),
      host_(host),
      probe_(probe_enabled_from_env()),
      probe_timeout_(probe_timeout_from_env()),
      probe_cache_(ProbeCache::default_file()) {}

void PluginHost::mark_phase(const char* phase) const {
  if (probe_channel_ != nullptr) probe_channel_->mark_phase(phase);
}

PluginRecord PluginHost::load(const std::string& path) {
  const std::string key = canonical_key(path);
  if (auto it = by_canonical_path_.find(key); it != by_canonical_path_.end()) return records_[it->second];
  PluginRecord record;
  record.path = path;
  record.name = file_stem(path);
  record.ok = probe_ ? probe_then_load(path, record) : load_checked(path, record);
  record.status = record.ok ? PluginStatus::kOk : PluginStatus::kRejected;
  record.reason = one_line(record.reason);
  by_canonical_path_[key] = records_.size();
  records_.push_back(record);
  return record;
}

bool PluginHost::check_before_open(const std::string& path, PluginRecord& record) {
  std::error_code exists_ec;
  if (!fs::exists(path, exists_ec)) return true;  // dlopen reports a missing file in its words
  if (auto why = unsafe_path_reason(path)) {
    record.reason = cat("refusing to open ", *why);
    return false;
  }
  if (auto why = unsafe_link_target_reason(path)) {
    record.reason = cat("refusing to open ", *why);
    return false;
  }
  // A manifest next to the .so is checked before any of the plugin's code is mapped; a plugin
  // without one goes straight to the descriptor checks.
  const std::string manifest_path = plugin_manifest_path(path);
  if (!fs::exists(manifest_path, exists_ec)) return true;
  record.manifest_path = manifest_path;
  try {
    const PluginManifest manifest = read_plugin_manifest(manifest_path);
    record.version = manifest.version;
    if (auto why = check_manifest(manifest, host_, file_stem(path))) {
      record.reason = cat("manifest ", manifest_path, ": ", *why);
      return false;
    }
    // The file could change between this hash and dlopen only for someone who can write to its
    // directory, which the search path has already limited to this user (or root).
    if (auto why = check_manifest_sha256(manifest, path)) {
      record.reason = *why;
      return false;
    }
  } catch (const Error& e) {
    record.reason = e.what();
    return false;
  }
  return true;
}

bool PluginHost::load_checked(const std::string& path, PluginRecord& record) {
  if (!check_before_open(path, record)) return false;
  // An absolute path: dlopen would search the library path for a bare file name.
  const std::string absolute = fs::absolute(path).string();
  mark_phase("dlopen");
  dlerror();
  void* handle = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    record.reason = cat("dlopen failed: ", why != nullptr ? why : "unknown error");
    return false;
  }
  // Kept open even when rejected: a plugin's static destructors may reference state that
  // dlclose would unmap, and a few leaked mappings cost nothing (never unload).
  handles_.push_back(handle);

  mark_phase("entry point");
  void* symbol = dlsym(handle, SPECULATORS_PLUGIN_ENTRY_SYMBOL);
  if (symbol == nullptr) {
    record.reason = cat("no entry point ", SPECULATORS_PLUGIN_ENTRY_SYMBOL, " (not a speculators plugin?)");
    return false;
  }
  const speculators_plugin_descriptor* descriptor = nullptr;
  try {
    descriptor = reinterpret_cast<speculators_plugin_entry_fn>(symbol)();
  } catch (const std::exception& e) {
    record.reason = cat("entry point ", SPECULATORS_PLUGIN_ENTRY_SYMBOL, " threw: ", e.what());
    return false;
  } catch (...) {
    record.reason = cat("entry point ", SPECULATORS_PLUGIN_ENTRY_SYMBOL, " threw a non-standard exception");
    return false;
  }
  if (descriptor == nullptr) {
    record.reason = cat("entry point ", SPECULATORS_PLUGIN_ENTRY_SYMBOL, " returned null");
    return false;
  }
  record.struct_size = descriptor->struct_size;
  if (descriptor->struct_size >= kDescriptorBytesRead) copy_descriptor_fields(*descriptor, record);
  if (auto why = check_descriptor(*descriptor, host_, file_stem(path))) {
    record.reason = *why;
    return false;
  }
  if (registry_.contains(descriptor->name)) {
    const Registry::Entry& owner = registry_.get(descriptor->name);
    record.reason = cat("name \"", descriptor->name, "\" is already registered by plugin ", owner.plugin, " (",
                        owner.path, ")");
    return false;
  }
  return register_plugin(*descriptor, path, record);
}

bool PluginHost::register_plugin(const speculators_plugin_descriptor& descriptor, const std::string& path,
                                 PluginRecord& record) {
  // Everything goes into a staging registry first, so that a plugin failing halfway leaves
  // nothing registered.
  Registry staging;
  Registrar registrar(staging, descriptor.name, path);
  mark_phase("registration");
  char error[kRegisterErrorSize] = {};
  int rc = 0;
  try {
    rc = descriptor.register_fn(&registrar, error, sizeof error);
  } catch (const std::exception& e) {
    // The register function must not throw (plugin/abi.h); a hand-written one might anyway.
    record.reason = cat("register threw: ", e.what());
    return false;
  } catch (...) {
    record.reason = "register threw a non-standard exception";
    return false;
  }
  error[sizeof error - 1] = '\0';
  if (rc != 0 || error[0] != '\0') {
    record.reason = error[0] != '\0' ? cat("register failed: ", error)
                                     : cat("register returned ", rc, " without an error message");
    return false;
  }
  const std::vector<std::string> names = staging.names();
  if (names.empty()) {
    record.reason = "register added no algorithm";
    return false;
  }
  // `--speculator-type <plugin name>` finds a plugin by its file: one that registers its
  // algorithms under other names only could never be selected by its own name.
  if (std::find(names.begin(), names.end(), descriptor.name) == names.end()) {
    std::string registered;
    for (const auto& name : names) registered += (registered.empty() ? "" : ", ") + name;
    record.reason = cat("registers no algorithm named \"", descriptor.name,
                        "\" (the plugin's name, from speculators_add_plugin); it registered: ", registered);
    return false;
  }
  Registry merged = registry_;
  try {
    for (const auto& name : names) {
      const Registry::Entry& entry = staging.get(name);
      merged.add(entry.algorithm, entry.plugin, entry.path);
    }
  } catch (const Error& e) {
    record.reason = cat("register failed: ", e.what());
    return false;
  }
  registry_ = std::move(merged);
  record.algorithms = names;
  return true;
}

void PluginHost::load_all(const std::vector<PluginCandidate>& candidates) {
  for (const auto& candidate : candidates) {
    if (candidate.shadowed_by.empty()) {
      load(candidate.path);
      continue;
    }
    const bool listed = std::any_of(records_.begin(), records_.end(),
                                    [&](const PluginRecord& r) { return r.path == candidate.path; });
    if (listed) continue;
    PluginRecord record;
    record.name = candidate.stem;
    record.path = candidate.path;
    record.status = PluginStatus::kShadowed;
    record.reason = cat("shadowed by ", candidate.shadowed_by);
    records_.push_back(std::move(record));
  }
}

const Registry::Entry& PluginHost::load_for_algorithm(const std::string& algorithm,
                                                      const std::vector<PluginCandidate>& candidates) {
  if (registry_.contains(algorithm)) return registry_.get(algorithm);
  auto own = std::find_if(candidates.begin(), candidates.end(), [&](const PluginCandidate& c) {
    return c.stem == algorithm && c.shadowed_by.empty();
  });
  if (own != candidates.end()) {
    PluginRecord record = load(own->path);
    if (!record.ok) fail(cat("plugin ", algorithm, " (", record.path, ") rejected: ", record.reason), ExitCode::kPlugin);
  }
  // Not in its own <name>.so: a plugin may register several algorithms, so try them all.
  if (!registry_.contains(algorithm)) load_all(candidates);
  if (registry_.contains(algorithm)) return registry_.get(algorithm);

  std::string message = cat("unknown algorithm \"", algorithm, "\"; registered: ");
  const std::vector<std::string> names = registry_.names();
  for (std::size_t i = 0; i < names.size(); ++i) message += (i ? ", " : "") + names[i];
  if (names.empty()) message += "none";
  for (const auto& record : records_) {
    if (record.status == PluginStatus::kRejected) message += cat("; rejected ", record.path, ": ", record.reason);
  }
  if (candidates.empty()) message += "; no plugin (.so) was found in the search path";
  fail_usage(message + " (see --list-plugins)");
}

bool PluginHost::probe_then_load(const std::string& path, PluginRecord& record) {
  // The same file probed by the same host before: its outcome without a child (probe_cache.h).
  std::optional<ProbeCacheKey> key;
  if (!probe_cache_.file().empty() && (key = probe_cache_key(path, host_))) {
    if (const auto outcome = probe_cache_.find(*key)) {
      log::debug(cat("plugin ", path, ": probe result from ", probe_cache_.file(), ": ", *outcome));
      if (*outcome == kProbeOutcomeOk) return load_checked(path, record);
      record.reason = *outcome;
      return false;
    }
  }
  // The child runs the same sequence against its copy of this host's registry, so its answer
  // is what loading here would give, without any of the plugin's code running here.
  const ProbeResult probe = run_in_probe_child(
      [&](const ProbeChannel& channel) {
        probe_channel_ = &channel;
        PluginRecord child = record;
        child.ok = load_checked(path, child);
        channel.send_answer(serialize_plugin_record(child));
      },
      probe_timeout_);
  if (!probe.answered) {
    if (key && probe.plugin_fault) probe_cache_.store(*key, probe.failure);
    record.reason = probe.failure;
    return false;
  }
  PluginRecord answer = parse_plugin_record(probe.answer);
  if (!answer.ok) {
    answer.path = record.path;
    record = answer;
    return false;
  }
  if (key) probe_cache_.store(*key, kProbeOutcomeOk);
  return load_checked(path, record);
}

}  // namespace speculators
