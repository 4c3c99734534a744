// Json: the SDK's value type, its parser (nlohmann-json, private to core) and its two printers:
// compact JSONL and the byte format of Python's json.dumps(indent=2, sort_keys=True) that
// config.json uses.
#include "speculators/json.h"

#include "atomic_file.h"


#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"
#include "text/utf8.h"

namespace speculators {

namespace {

const char* kTypeNames[] = {"null", "bool", "int", "float", "string", "array", "object"};

Json from_nlohmann(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Json();
    case nlohmann::json::value_t::boolean: return Json(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Json(static_cast<long long>(j.get<std::int64_t>()));
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) return Json(static_cast<double>(u));
      return Json(static_cast<long long>(u));
    }
    case nlohmann::json::value_t::number_float: return Json(j.get<double>());
    case nlohmann::json::value_t::string: return Json(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      Json::Array out;
      out.reserve(j.size());
      for (const auto& item : j) out.push_back(from_nlohmann(item));
      return Json(std::move(out));
    }
    case nlohmann::json::value_t::object: {
      Json::Object out;
      for (auto it = j.begin(); it != j.end(); ++it) out[it.key()] = from_nlohmann(it.value());
      return Json(std::move(out));
    }
    default: fail("unsupported JSON value (binary or discarded)");
  }
}

// Python's json.dumps default (ensure_ascii=True): non-ASCII as \uXXXX (UTF-16 pairs).
void escape_string(std::string& out, const std::string& s) { text::append_json_string(out, s, /*ensure_ascii=*/true); }

std::string float_json(double v) {
  // Python's json module writes NaN/Infinity (allow_nan=True); keep that for byte compatibility.
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return python_float_repr(v);
}

void dump_compact(std::string& out, const Json& j);

void dump_indented(std::string& out, const Json& j, int indent, int depth) {
  const std::string pad(static_cast<std::size_t>(indent * (depth + 1)), ' ');
  const std::string close_pad(static_cast<std::size_t>(indent * depth), ' ');
  if (j.is_array()) {
    const auto& a = j.as_array();
    if (a.empty()) { out += "[]"; return; }
    out += "[\n";
    for (std::size_t i = 0; i < a.size(); ++i) {
      out += pad;
      dump_indented(out, a[i], indent, depth + 1);
      if (i + 1 < a.size()) out += ",";
      out += "\n";
    }
    out += close_pad + "]";
  } else if (j.is_object()) {
    const auto& o = j.as_object();
    if (o.empty()) { out += "{}"; return; }
    out += "{\n";
    std::size_t i = 0;
    for (const auto& [key, value] : o) {
      out += pad;
      escape_string(out, key);
      out += ": ";
      dump_indented(out, value, indent, depth + 1);
      if (++i < o.size()) out += ",";
      out += "\n";
    }
    out += close_pad + "}";
  } else {
    dump_compact(out, j);
  }
}

void dump_compact(std::string& out, const Json& j) {
  switch (j.type()) {
    case Json::Type::kNull: out += "null"; break;
    case Json::Type::kBool: out += j.as_bool() ? "true" : "false"; break;
    case Json::Type::kInt: out += std::to_string(j.as_int()); break;
    case Json::Type::kFloat: out += float_json(j.as_double()); break;
    case Json::Type::kString: escape_string(out, j.as_string()); break;
    case Json::Type::kArray: {
      out += "[";
      bool first = true;
      for (const auto& item : j.as_array()) {
        if (!first) out += ",";
        first = false;
        dump_compact(out, item);
      }
      out += "]";
      break;
    }
    case Json::Type::kObject: {
      out += "{";
      bool first = true;
      for (const auto& [key, value] : j.as_object()) {
        if (!first) out += ",";
        first = false;
        escape_string(out, key);
        out += ":";
        dump_compact(out, value);
      }
      out += "}";
      break;
    }
  }
}

[[noreturn]] void type_error(const Json& j, const char* wanted) {
  fail(cat("expected a JSON ", wanted, ", got ", j.type_name()));
}

}  // namespace

Json::Json(const std::vector<std::int64_t>& v) : value_(Array(v.begin(), v.end())) {}
Json::Json(const std::vector<double>& v) : value_(Array(v.begin(), v.end())) {}
Json::Json(const std::vector<std::string>& v) : value_(Array(v.begin(), v.end())) {}

const char* Json::type_name() const { return kTypeNames[value_.index()]; }

bool Json::as_bool() const {
  if (!is_bool()) type_error(*this, "bool");
  return std::get<bool>(value_);
}
std::int64_t Json::as_int() const {
  if (is_int()) return std::get<std::int64_t>(value_);
  if (is_float()) {
    double d = std::get<double>(value_);
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
      return static_cast<std::int64_t>(d);
    }
  }
  type_error(*this, "integer");
}
double Json::as_double() const {
  if (is_float()) return std::get<double>(value_);
  if (is_int()) return static_cast<double>(std::get<std::int64_t>(value_));
  type_error(*this, "number");
}
const std::string& Json::as_string() const {
  if (!is_string()) type_error(*this, "string");
  return std::get<std::string>(value_);
}
const Json::Array& Json::as_array() const {
  if (!is_array()) type_error(*this, "array");
  return std::get<Array>(value_);
}
Json::Array& Json::as_array() {
  if (!is_array()) type_error(*this, "array");
  return std::get<Array>(value_);
}
const Json::Object& Json::as_object() const {
  if (!is_object()) type_error(*this, "object");
  return std::get<Object>(value_);
}
Json::Object& Json::as_object() {
  if (!is_object()) type_error(*this, "object");
  return std::get<Object>(value_);
}
std::vector<std::int64_t> Json::as_int_list() const {
  std::vector<std::int64_t> out;
  for (const auto& item : as_array()) out.push_back(item.as_int());
  return out;
}
std::vector<double> Json::as_double_list() const {
  std::vector<double> out;
  for (const auto& item : as_array()) out.push_back(item.as_double());
  return out;
}
std::vector<std::string> Json::as_string_list() const {
  std::vector<std::string> out;
  for (const auto& item : as_array()) out.push_back(item.as_string());
  return out;
}

Json& Json::operator[](const std::string& key) {
  if (is_null()) value_ = Object{};
  return as_object()[key];
}
const Json& Json::at(const std::string& key) const {
  const auto& o = as_object();
  auto it = o.find(key);
  if (it == o.end()) fail(cat("missing key \"", key, "\""));
  return it->second;
}
bool Json::contains(const std::string& key) const {
  return is_object() && std::get<Object>(value_).count(key) != 0;
}
Json Json::get(const std::string& key, Json fallback) const {
  if (!contains(key)) return fallback;
  const Json& v = std::get<Object>(value_).at(key);
  return v.is_null() ? fallback : v;
}
void Json::push_back(Json v) {
  if (is_null()) value_ = Array{};
  as_array().push_back(std::move(v));
}
std::size_t Json::size() const {
  if (is_array()) return std::get<Array>(value_).size();
  if (is_object()) return std::get<Object>(value_).size();
  return 0;
}

namespace {

// Untrusted JSON (configs, manifests, checkpoints, metrics lines) is refused before parsing when
// its arrays and objects nest deeper than any real file does: the DOM and its conversion recurse.
constexpr int kMaxJsonDepth = 256;

void check_nesting(const std::string& text, const std::string& origin) {
  int depth = 0;
  std::size_t line = 1, column = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
    }
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        fail(cat(origin, ": invalid JSON: nested deeper than ", kMaxJsonDepth, " levels at line ", line, ", column ",
                 column));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

}  // namespace

Json Json::parse(const std::string& text, const std::string& origin) {
  check_nesting(text, origin);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error (syntax) and out_of_range (a number like 1e400 that no double holds) alike.
    fail(cat(origin, ": invalid JSON: ", e.what()));
  }
  return from_nlohmann(j);
}

Json Json::read_file(const std::string& path, std::uintmax_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    fail(cat(path, ": cannot open: ", std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_bytes) {
    fail(cat(path, ": ", size, " bytes is larger than the ", max_bytes, " bytes a JSON file of this kind may have"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(cat(path, ": cannot open: ", std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

std::string Json::dump() const {
  std::string out;
  dump_compact(out, *this);
  return out;
}

std::string Json::dump_python(int indent) const {
  std::string out;
  dump_indented(out, *this, indent, 0);
  out += "\n";
  return out;
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest digit string that round-trips (what Python's repr uses).
  char buf[40];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf = "-d.ddde±XX": split into sign, digits and decimal exponent.
  std::string s(buf);
  bool negative = s[0] == '-';
  if (negative) s = s.substr(1);
  auto epos = s.find('e');
  std::string mantissa = s.substr(0, epos);
  int exponent = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exponent + 1;  // value = 0.DIGITS x 10^decpt
  std::string out = negative ? "-" : "";
  if (decpt <= -4 || decpt > 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += ebuf;
  } else if (decpt <= 0) {
    out += "0." + std::string(static_cast<std::size_t>(-decpt), '0') + digits;
  } else if (static_cast<std::size_t>(decpt) < digits.size()) {
    out += digits.substr(0, static_cast<std::size_t>(decpt)) + "." + digits.substr(static_cast<std::size_t>(decpt));
  } else {
    out += digits + std::string(static_cast<std::size_t>(decpt) - digits.size(), '0') + ".0";
  }
  return out;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFileWriter out(path);
  out.write(text);
  out.commit();
}

}  // namespace speculators
