// A small JSON value that crosses the plugin boundary instead of a third-party type. Objects keep
// their keys sorted (std::map), which is also the order the reference writes config.json in
// (Hugging Face's PretrainedConfig.to_json_file). Integers and floats are kept apart so that 2048
// stays 2048 and 500000.0 stays 500000.0 on a round trip.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace speculators {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;
  enum class Type { kNull, kBool, kInt, kFloat, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool v) : value_(v) {}
  Json(int v) : value_(static_cast<std::int64_t>(v)) {}
  Json(long v) : value_(static_cast<std::int64_t>(v)) {}
  Json(long long v) : value_(static_cast<std::int64_t>(v)) {}
  Json(unsigned v) : value_(static_cast<std::int64_t>(v)) {}
  Json(unsigned long v) : value_(static_cast<std::int64_t>(v)) {}
  Json(double v) : value_(v) {}
  Json(const char* v) : value_(std::string(v)) {}
  Json(std::string v) : value_(std::move(v)) {}
  Json(Array v) : value_(std::move(v)) {}
  Json(Object v) : value_(std::move(v)) {}
  Json(const std::vector<std::int64_t>& v);
  Json(const std::vector<double>& v);
  Json(const std::vector<std::string>& v);

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }
  // {{"a", 1}, {"b", "x"}}
  static Json object(std::initializer_list<std::pair<const std::string, Json>> items) {
    return Json(Object(items));
  }

  Type type() const { return static_cast<Type>(value_.index()); }
  const char* type_name() const;
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_float() const { return type() == Type::kFloat; }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Typed access; each throws speculators::Error naming the expected and actual type.
  bool as_bool() const;
  std::int64_t as_int() const;
  double as_double() const;  // ints convert
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();
  std::vector<std::int64_t> as_int_list() const;
  std::vector<double> as_double_list() const;
  std::vector<std::string> as_string_list() const;

  // Object access. operator[] creates the key (turning null into an object).
  Json& operator[](const std::string& key);
  const Json& at(const std::string& key) const;  // throws Error naming the key
  bool contains(const std::string& key) const;
  // Value of key, or fallback when absent or null.
  Json get(const std::string& key, Json fallback) const;
  void push_back(Json v);
  std::size_t size() const;

  bool operator==(const Json& other) const { return value_ == other.value_; }
  bool operator!=(const Json& other) const { return !(*this == other); }

  // Parses JSON text; `origin` (a file name) is quoted in the error message. Text nested deeper
  // than 256 levels or holding a number no double can represent is an Error, like a syntax error.
  static Json parse(const std::string& text, const std::string& origin = "<json>");
  // Reads and parses a regular file of at most `max_bytes` (a FIFO or device is refused, so a
  // read never blocks).
  static Json read_file(const std::string& path, std::uintmax_t max_bytes = std::uintmax_t{256} << 20);

  // Compact one-line form ({"a":1}), as used in JSONL logs.
  std::string dump() const;
  // The byte format of Python's json.dumps(obj, indent=2, sort_keys=True) + "\n", which is how
  // the reference writes config.json: floats in Python repr (1e-05, 500000.0, 0.0).
  std::string dump_python(int indent = 2) const;

 private:
  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Array, Object> value_;
};

// Python's repr() of a float: shortest round-trip digits, "1e-05", "500000.0", "inf".
std::string python_float_repr(double v);

// Writes `text` to `path` atomically (temporary file in the same directory, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace speculators
