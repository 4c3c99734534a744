// The registry of algorithms and the Registrar a plugin's register function receives.
// One name registers both the config schema and the model factory (the C++ form of the
// reference's @register("name") decorators,
// speculators/utils/registry.py: ClassRegistryMixin.register).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {

class Registry {
 public:
  struct Entry {
    std::shared_ptr<Algorithm> algorithm;
    std::string plugin;   // the plugin that registered it
    std::string path;     // its .so
  };

  // Throws Error if `name` is already registered (naming both plugins).
  void add(std::shared_ptr<Algorithm> algorithm, const std::string& plugin, const std::string& path);
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // Throws Error(kUsage) listing the registered names when `name` is unknown.
  const Entry& get(const std::string& name) const;
  std::vector<std::string> names() const;
  // True if `model` was built by a registered algorithm (the reference's
  // SpeculatorModel.verify_training_compatible).
  void note_built(const DraftModel* model, const std::string& name);
  bool was_built_here(const DraftModel* model) const;

 private:
  std::map<std::string, Entry> entries_;
  std::map<const DraftModel*, std::string> built_;
};

// Handed to a plugin's register function; collects what it adds, checked by the host.
class Registrar {
 public:
  Registrar(Registry& registry, std::string plugin, std::string path)
      : registry_(registry), plugin_(std::move(plugin)), path_(std::move(path)) {}

  template <typename AlgorithmType, typename... CtorArgs>
  void add(CtorArgs&&... ctor_args) {
    add(std::make_shared<AlgorithmType>(std::forward<CtorArgs>(ctor_args)...));
  }
  void add(std::shared_ptr<Algorithm> algorithm);
  const std::string& plugin_name() const { return plugin_; }

 private:
  Registry& registry_;
  std::string plugin_;
  std::string path_;
};

}  // namespace speculators
