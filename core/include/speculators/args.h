// The resolved job: a flat mapping of snake_case keys to values, after flags > YAML > defaults.
// Algorithms read what they need through typed getters whose errors name the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

class Args {
 public:
  Args() : values_(Json::object()) {}
  explicit Args(Json values);

  bool has(const std::string& key) const;        // present and not null
  const Json& get(const std::string& key) const;  // throws if the key is unknown
  bool get_bool(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::int64_t> get_int_list(const std::string& key) const;
  std::optional<std::int64_t> get_optional_int(const std::string& key) const;

  void set(const std::string& key, Json value);
  const Json& json() const { return values_; }

 private:
  Json values_;
};

}  // namespace speculators
