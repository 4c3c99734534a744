// The value model of the chat-template interpreter: Jinja's undefined, Python's None, bool, int,
// float, str, list and insertion-ordered dict, a mutable namespace and callables (macros and the
// template globals), with Python's truthiness, equality, ordering, str(), repr() and json.dumps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace speculators::text::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's dict
struct Args;
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };
  Kind kind = Kind::kUndefined;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;  // the string, or the name an undefined value was looked up by
  bool tuple = false;  // a list that prints as a Python tuple
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // also a namespace's attributes
  std::shared_ptr<Function> fn;

  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(std::int64_t v);
  static Value real(double v);
  static Value string(std::string v);
  static Value make_list(List v = {});
  static Value make_tuple(List v);
  static Value make_dict(Dict v = {});
  static Value make_namespace(Dict v = {});
  static Value callable(Function f);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  bool is_list() const { return kind == Kind::kList; }
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kNamespace; }
  double as_double() const { return kind == Kind::kFloat ? f : static_cast<double>(kind == Kind::kBool ? b : i); }

  // The entry for `key` in a dict or namespace, or nullptr.
  const Value* find(const std::string& key) const;
};

// Call arguments: positional, then keyword ones in call order.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`, or undefined when neither was given.
  Value get(std::size_t index, const std::string& name) const;
};

// The Python type name of `v` ("str", "dict", "NoneType", ...), for error messages.
std::string type_name(const Value& v);
bool truthy(const Value& v);
bool equal(const Value& a, const Value& b);
// Python's `a < b` for numbers, strings and lists; throws a message for other pairs.
bool less(const Value& a, const Value& b);
std::string to_str(const Value& v);   // Python's str(); undefined prints as ""
std::string to_repr(const Value& v);  // Python's repr()
std::string format_float(double v);   // Python's repr() of a float
// The arguments of Python's json.dumps; empty separators mean its defaults.
struct JsonFormat {
  int indent = -1;  // None
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator;
  std::string key_separator;
};
std::string to_json(const Value& v, const JsonFormat& format);

Value from_json(const nlohmann::ordered_json& j);

// Code points of a UTF-8 string, and back, for len(), indexing and slicing.
std::u32string decode(const std::string& s);
std::string encode(const std::u32string& s);
bool is_py_space(char32_t c);  // str.isspace() of one code point

}  // namespace speculators::text::jinja
