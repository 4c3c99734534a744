// Python semantics of the interpreter's values: truthiness, ==, <, str(), repr(), json.dumps and
// the conversion from JSON messages.
#include "text/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "text/utf8.h"

namespace speculators::text::jinja {

namespace {

// A value of `kind` whose payload `fill` sets.
template <typename Fill>
Value made(Value::Kind kind, Fill fill) {
  Value v;
  v.kind = kind;
  fill(v);
  return v;
}

}  // namespace

Value Value::undefined(std::string name) {
  return made(Kind::kUndefined, [&](Value& v) { v.s = std::move(name); });
}
Value Value::none() {
  return made(Kind::kNone, [](Value&) {});
}
Value Value::boolean(bool x) {
  return made(Kind::kBool, [&](Value& v) { v.b = x; });
}
Value Value::integer(std::int64_t x) {
  return made(Kind::kInt, [&](Value& v) { v.i = x; });
}
Value Value::real(double x) {
  return made(Kind::kFloat, [&](Value& v) { v.f = x; });
}
Value Value::string(std::string x) {
  return made(Kind::kString, [&](Value& v) { v.s = std::move(x); });
}
Value Value::make_list(List x) {
  return made(Kind::kList, [&](Value& v) { v.list = std::make_shared<List>(std::move(x)); });
}
Value Value::make_tuple(List x) {
  Value v = make_list(std::move(x));
  v.tuple = true;
  return v;
}
Value Value::make_dict(Dict x) {
  return made(Kind::kDict, [&](Value& v) { v.dict = std::make_shared<Dict>(std::move(x)); });
}
Value Value::make_namespace(Dict x) {
  Value v = make_dict(std::move(x));
  v.kind = Kind::kNamespace;
  return v;
}
Value Value::callable(Function f) {
  return made(Kind::kCallable, [&](Value& v) { v.fn = std::make_shared<Function>(std::move(f)); });
}

const Value* Value::find(const std::string& key) const {
  if (!is_mapping()) return nullptr;
  for (const auto& [k, v] : *dict)
    if (k == key) return &v;
  return nullptr;
}

Value Args::get(std::size_t index, const std::string& name) const {
  if (index < positional.size()) return positional[index];
  for (const auto& [k, v] : keyword)
    if (k == name) return v;
  return Value::undefined(name);
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return "Namespace";
    case Value::Kind::kCallable: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.b;
    case Value::Kind::kInt: return v.i != 0;
    case Value::Kind::kFloat: return v.f != 0;
    case Value::Kind::kString: return !v.s.empty();
    case Value::Kind::kList: return !v.list->empty();
    case Value::Kind::kDict: return !v.dict->empty();
    default: return true;
  }
}

namespace {
bool numeric(const Value& v) { return v.is_number() || v.kind == Value::Kind::kBool; }
}  // namespace

bool equal(const Value& a, const Value& b) {
  if (numeric(a) && numeric(b)) {
    if (a.kind == Value::Kind::kFloat || b.kind == Value::Kind::kFloat) return a.as_double() == b.as_double();
    return (a.kind == Value::Kind::kBool ? a.b : a.i) == (b.kind == Value::Kind::kBool ? b.b : b.i);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.s == b.s;
    case Value::Kind::kList:
      if (a.tuple != b.tuple || a.list->size() != b.list->size()) return false;
      for (std::size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::Kind::kDict:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [k, v] : *a.dict) {
        const Value* other = b.find(k);
        if (other == nullptr || !equal(v, *other)) return false;
      }
      return true;
    default: return a.dict == b.dict && a.fn == b.fn;
  }
}

bool less(const Value& a, const Value& b) {
  if (numeric(a) && numeric(b)) {
    if (a.kind == Value::Kind::kInt && b.kind == Value::Kind::kInt) return a.i < b.i;
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return decode(a.s) < decode(b.s);
  if (a.is_list() && b.is_list() && a.tuple == b.tuple) {
    const List& x = *a.list;
    const List& y = *b.list;
    for (std::size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!equal(x[k], y[k])) return less(x[k], y[k]);
    }
    return x.size() < y.size();
  }
  throw std::runtime_error("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) +
                           "'");
}

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf is d.ddde±XX: rebuild it as Python's repr does (scientific below 1e-4 or from 1e16).
  std::string text(buf);
  const std::size_t e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string mantissa = text.substr(0, e);
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  const auto int_len = static_cast<std::size_t>(exponent + 1);
  if (digits.size() <= int_len) return out + digits + std::string(int_len - digits.size(), '0') + ".0";
  return out + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

namespace {
std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const char quote = has_single && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + quote;
}
}  // namespace

std::string to_repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString: return repr_string(v.s);
    case Value::Kind::kList: {
      std::string out = v.tuple ? "(" : "[";
      for (std::size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + to_repr((*v.list)[k]);
      if (v.tuple && v.list->size() == 1) out += ",";
      return out + (v.tuple ? ")" : "]");
    }
    case Value::Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : *v.dict) {
        out += (first ? "" : ", ") + repr_string(k) + ": " + to_repr(x);
        first = false;
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.b ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.i);
    case Value::Kind::kFloat: return format_float(v.f);
    case Value::Kind::kString: return v.s;
    case Value::Kind::kNamespace: return "<Namespace " + to_repr(Value::make_dict(*v.dict)) + ">";
    case Value::Kind::kCallable: return "<function>";
    default: return to_repr(v);
  }
}

namespace {
void json_value(std::string& out, const Value& v, const JsonFormat& f, int depth) {
  const int indent = f.indent;
  const std::string item_sep = !f.item_separator.empty() ? f.item_separator : indent >= 0 ? "," : ", ";
  const std::string key_sep = !f.key_separator.empty() ? f.key_separator : ": ";
  auto newline = [&](int d) {
    if (indent >= 0) out += "\n" + std::string(static_cast<std::size_t>(indent * d), ' ');
  };
  switch (v.kind) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.b ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.i); return;
    case Value::Kind::kFloat:
      out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : format_float(v.f);
      return;
    case Value::Kind::kString: append_json_string(out, v.s, f.ensure_ascii); return;
    case Value::Kind::kList:
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += "[";
      for (std::size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        json_value(out, (*v.list)[k], f, depth + 1);
      }
      newline(depth);
      out += "]";
      return;
    case Value::Kind::kDict: {
      if (v.dict->empty()) {
        out += "{}";
        return;
      }
      Dict entries = *v.dict;
      if (f.sort_keys)
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& x, const auto& y) { return decode(x.first) < decode(y.first); });
      out += "{";
      for (std::size_t k = 0; k < entries.size(); ++k) {
        if (k) out += item_sep;
        newline(depth + 1);
        append_json_string(out, entries[k].first, f.ensure_ascii);
        out += key_sep;
        json_value(out, entries[k].second, f, depth + 1);
      }
      newline(depth);
      out += "}";
      return;
    }
    default: throw std::runtime_error("Object of type " + type_name(v) + " is not JSON serializable");
  }
}
}  // namespace

std::string to_json(const Value& v, const JsonFormat& format) {
  std::string out;
  json_value(out, v, format, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned: return Value::integer(j.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_float: return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict entries;
      for (const auto& [k, x] : j.items()) entries.emplace_back(k, from_json(x));
      return Value::make_dict(std::move(entries));
    }
    default: return Value::none();
  }
}

std::u32string decode(const std::string& s) {
  std::u32string out;
  std::size_t i = 0;
  while (i < s.size()) out += utf8_next(s, i);
  return out;
}

std::string encode(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace speculators::text::jinja
