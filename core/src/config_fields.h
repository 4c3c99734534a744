// Typed readers for Hugging Face config.json objects: each error names the file, the key and
// the value at fault (Json's own errors name neither). Shared by the decoder config and the
// rotary parameter parsers.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {
namespace config_fields {

inline std::int64_t int_value(const Json& v, const std::string& key, const std::string& where) {
  if (v.is_int()) return v.as_int();
  if (v.is_float() && std::floor(v.as_double()) == v.as_double()) {
    return static_cast<std::int64_t>(v.as_double());
  }
  fail_usage(cat(where, ": key '", key, "' must be an integer, got ", v.type_name(), " ", v.dump()));
}

inline std::int64_t read_int(const Json& obj, const std::string& key, const std::string& where) {
  return int_value(obj.at(key), key, where);
}

inline std::int64_t required_int(const Json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) {
    fail_usage(cat(where, ": required key '", key, "' is missing"));
  }
  return read_int(obj, key, where);
}

inline std::int64_t optional_int(const Json& obj, const std::string& key, std::int64_t fallback,
                          const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  return read_int(obj, key, where);
}

inline std::optional<std::int64_t> nullable_int(const Json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return std::nullopt;
  const Json& v = obj.at(key);
  // eos_token_id is a list in some chat models (Llama-3.1-Instruct); the first id stands for it.
  if (v.is_array()) {
    if (v.as_array().empty()) return std::nullopt;
    return int_value(v.as_array().front(), key, where);
  }
  return read_int(obj, key, where);
}

inline double optional_double(const Json& obj, const std::string& key, double fallback, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_number()) {
    fail_usage(cat(where, ": key '", key, "' must be a number, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_double();
}

inline bool optional_bool(const Json& obj, const std::string& key, bool fallback, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_bool()) {
    fail_usage(cat(where, ": key '", key, "' must be true or false, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_bool();
}

inline std::string optional_string(const Json& obj, const std::string& key, const std::string& fallback,
                            const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_string()) {
    fail_usage(cat(where, ": key '", key, "' must be a string, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_string();
}

}  // namespace config_fields
}  // namespace speculators
