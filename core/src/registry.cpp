// The algorithm registry and the Registrar handed to a plugin's register function. The registry
// is a plain map owned by whoever loads plugins (the host's PluginHost); it keeps each algorithm
// with the plugin and .so it came from so that every clash names both sides.
#include "speculators/registry.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

std::string describe_origin(const std::string& plugin, const std::string& path) {
  return path.empty() ? cat("plugin ", plugin) : cat("plugin ", plugin, " (", path, ")");
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

}  // namespace

void Registry::add(std::shared_ptr<Algorithm> algorithm, const std::string& plugin, const std::string& path) {
  if (!algorithm) fail(cat(describe_origin(plugin, path), " registered a null algorithm"), ExitCode::kPlugin);
  std::string name = algorithm->name();
  if (name.empty()) fail(cat(describe_origin(plugin, path), " registered an algorithm with an empty name"), ExitCode::kPlugin);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    fail(cat("algorithm \"", name, "\" from ", describe_origin(plugin, path), " is already registered by ",
             describe_origin(it->second.plugin, it->second.path)),
         ExitCode::kPlugin);
  }
  entries_.emplace(std::move(name), Entry{std::move(algorithm), plugin, path});
}

const Registry::Entry& Registry::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end()) return it->second;
  if (entries_.empty()) {
    fail_usage(cat("unknown algorithm \"", name, "\": no algorithm is registered (no plugin loaded; see --list-plugins)"));
  }
  fail_usage(cat("unknown algorithm \"", name, "\"; registered: ", join(names(), ", ")));
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

void Registry::note_built(const DraftModel* model, const std::string& name) {
  if (model == nullptr) return;
  built_[model] = name;
}

bool Registry::was_built_here(const DraftModel* model) const {
  return model != nullptr && built_.count(model) != 0;
}

void Registrar::add(std::shared_ptr<Algorithm> algorithm) {
  if (!algorithm) fail(cat("plugin ", plugin_, ": Registrar::add got a null algorithm"), ExitCode::kPlugin);
  if (algorithm->name().empty()) {
    fail(cat("plugin ", plugin_, ": Registrar::add got an algorithm with an empty name()"), ExitCode::kPlugin);
  }
  registry_.add(std::move(algorithm), plugin_, path_);
}

}  // namespace speculators
