// Args: typed read access to the resolved job, with errors that name the key.
#include "speculators/args.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

Args::Args(Json values) : values_(std::move(values)) {
  if (values_.is_null()) values_ = Json::object();
  if (!values_.is_object()) fail("job arguments must be a mapping");
}

bool Args::has(const std::string& key) const {
  return values_.contains(key) && !values_.at(key).is_null();
}

const Json& Args::get(const std::string& key) const {
  if (!values_.contains(key)) fail(cat("job has no key \"", key, "\" (is it declared in a schema?)"));
  return values_.at(key);
}

namespace {
template <typename F>
auto typed(const Args& args, const std::string& key, const char* what, F&& f) {
  const Json& v = args.get(key);
  try {
    return f(v);
  } catch (const Error&) {
    fail_usage(cat("job key \"", key, "\" must be ", what, ", got ", v.is_null() ? "null" : v.dump()));
  }
}
}  // namespace

bool Args::get_bool(const std::string& key) const {
  return typed(*this, key, "a bool", [](const Json& v) { return v.as_bool(); });
}
std::int64_t Args::get_int(const std::string& key) const {
  return typed(*this, key, "an integer", [](const Json& v) { return v.as_int(); });
}
double Args::get_double(const std::string& key) const {
  return typed(*this, key, "a number", [](const Json& v) { return v.as_double(); });
}
std::string Args::get_string(const std::string& key) const {
  return typed(*this, key, "a string", [](const Json& v) { return v.as_string(); });
}
std::vector<std::int64_t> Args::get_int_list(const std::string& key) const {
  return typed(*this, key, "a list of integers", [](const Json& v) { return v.as_int_list(); });
}
std::optional<std::int64_t> Args::get_optional_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<double> Args::get_optional_double(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_double(key);
}
std::optional<std::string> Args::get_optional_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}
std::optional<std::vector<std::int64_t>> Args::get_optional_int_list(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int_list(key);
}

Args Args::with_defaults(const Schema& schema) const {
  Args out = *this;
  for (const auto& option : schema) {
    if (!values_.contains(option.key)) out.values_[option.key] = option.default_value;
  }
  return out;
}

void Args::set(const std::string& key, Json value) { values_[key] = std::move(value); }

}  // namespace speculators
