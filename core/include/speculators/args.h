// The resolved job: a flat mapping of snake_case keys to values, after flags > YAML > defaults.
// Algorithms read what they need through typed getters whose errors name the key, once per job
// into a typed options struct; with_defaults() fills what a hand-built job leaves out from the
// schema's declared defaults, so a default is written only in the schema.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"
#include "speculators/schema.h"

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
  // nullopt when the key is absent or null (an option whose default is "unset").
  std::optional<std::int64_t> get_optional_int(const std::string& key) const;
  std::optional<double> get_optional_double(const std::string& key) const;
  std::optional<std::string> get_optional_string(const std::string& key) const;
  std::optional<std::vector<std::int64_t>> get_optional_int_list(const std::string& key) const;

  // This job with every option of `schema` it does not hold set to the option's declared default
  // (null included); keys it holds, null ones too, stay as they are. A job the host resolved holds
  // every key already; tests and tools that build a few keys by hand get the rest here.
  Args with_defaults(const Schema& schema) const;

  void set(const std::string& key, Json value);
  const Json& json() const { return values_; }

 private:
  Json values_;
};

}  // namespace speculators
