// The filters, tests and globals of chat templates: jinja2's builtin filters and tests
// (jinja2/filters.py, jinja2/tests.py) that chat templates use, and the globals transformers adds
// (transformers/utils/chat_template_utils.py: _cached_compile_jinja_template: raise_exception,
// strftime_now and a tojson filter that is json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>

#include "speculators/text/html.h"
#include "text/jinja_eval.h"
#include "text/jinja_strings.h"

namespace speculators::text::jinja {

namespace {

std::string need_string(const Value& v, const char* what) {
  if (v.is_undefined()) return "";
  if (!v.is_string()) throw std::runtime_error(std::string(what) + " expects a string, got " + type_name(v));
  return v.s;
}

std::int64_t need_int(const Value& v, const char* what) {
  if (v.kind == Value::Kind::kInt) return v.i;
  if (v.kind == Value::Kind::kBool) return v.b;
  throw std::runtime_error(std::string(what) + " expects an integer, got " + type_name(v));
}

// The attribute path `a.b` of `v`, as jinja2's make_attrgetter resolves it.
Value attribute_path(const Value& v, const std::string& path) {
  Value cur = v;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_undefined()) return cur;
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = digits && cur.is_list() ? get_item(cur, Value::integer(std::stoll(part))) : get_item(cur, Value::string(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

Value select_filter(const std::string& name, const Value& target, Args& args) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep_when = name == "select" || name == "selectattr";
  std::size_t first = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty()) throw std::runtime_error(name + " needs an attribute name");
    attribute = need_string(args.positional[0], name.c_str());
    first = 1;
  }
  std::string test = "truthy";
  if (args.positional.size() > first) test = need_string(args.positional[first], name.c_str());
  Args test_args;
  for (std::size_t k = first + 1; k < args.positional.size(); ++k) test_args.positional.push_back(args.positional[k]);
  List out;
  for (const Value& item : iterate(target)) {
    const Value subject = by_attribute ? attribute_path(item, attribute) : item;
    const bool pass = test == "truthy" ? truthy(subject) : apply_test(test, subject, test_args);
    if (pass == keep_when) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value map_filter(const Value& target, Args& args) {
  const Value attribute = args.get(99, "attribute");
  List out;
  if (!attribute.is_undefined()) {
    const Value fallback = args.get(99, "default");
    for (const Value& item : iterate(target)) {
      Value v = attribute_path(item, to_str(attribute));
      out.push_back(v.is_undefined() && !fallback.is_undefined() ? fallback : v);
    }
    return Value::make_list(std::move(out));
  }
  if (args.positional.empty()) throw std::runtime_error("map needs a filter name or attribute=");
  const std::string filter = need_string(args.positional[0], "map");
  Args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : iterate(target)) out.push_back(apply_filter(filter, item, rest));
  return Value::make_list(std::move(out));
}

Value sort_filter(const Value& target, Args& args) {
  List items = iterate(target);
  const bool reverse = truthy(args.get(0, "reverse"));
  const bool case_sensitive = truthy(args.get(1, "case_sensitive"));
  const Value attribute = args.get(2, "attribute");
  auto key = [&](const Value& v) {
    Value k = attribute.is_undefined() ? v : attribute_path(v, to_str(attribute));
    if (k.is_string() && !case_sensitive) k.s = str_lower(k.s);
    return k;
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Value& a, const Value& b) { return reverse ? less(key(b), key(a)) : less(key(a), key(b)); });
  return Value::make_list(std::move(items));
}

Value indent_filter(const Value& target, Args& args) {
  const Value width_v = args.get(0, "width");
  const std::string pad = width_v.is_string() ? width_v.s : std::string(static_cast<std::size_t>(width_v.is_undefined() ? 4 : need_int(width_v, "indent")), ' ');
  const bool first = truthy(args.get(1, "first"));
  const bool blank = truthy(args.get(2, "blank"));
  if (!target.is_string()) throw std::runtime_error("indent expects a string, got " + type_name(target));
  const std::string& s = target.s;
  std::string out;
  std::size_t start = 0;
  bool first_line = true;
  while (start <= s.size()) {
    const std::size_t nl = s.find('\n', start);
    const std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const bool indent = (first_line ? first : true) && (blank || !line.empty());
    out += (indent ? pad : "") + line;
    if (nl == std::string::npos) break;
    out += "\n";
    start = nl + 1;
    first_line = false;
  }
  return Value::string(out);
}

Value length_of(const Value& v) {
  if (v.is_string()) return Value::integer(static_cast<std::int64_t>(decode(v.s).size()));
  if (v.is_list()) return Value::integer(static_cast<std::int64_t>(v.list->size()));
  if (v.is_mapping()) return Value::integer(static_cast<std::int64_t>(v.dict->size()));
  if (v.is_undefined()) return Value::integer(0);
  throw std::runtime_error("object of type '" + type_name(v) + "' has no len()");
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value tojson_filter(const Value& target, Args& args) {
  if (target.is_undefined()) undefined_error(target);
  JsonFormat format;
  format.ensure_ascii = truthy(args.get(0, "ensure_ascii"));
  const Value indent = args.get(1, "indent");
  if (!indent.is_undefined() && !indent.is_none()) format.indent = static_cast<int>(need_int(indent, "tojson indent"));
  const Value separators = args.get(2, "separators");
  if (separators.is_list() && separators.list->size() == 2) {
    format.item_separator = need_string((*separators.list)[0], "tojson separators");
    format.key_separator = need_string((*separators.list)[1], "tojson separators");
  } else if (!separators.is_undefined() && !separators.is_none()) {
    throw std::runtime_error("tojson separators must be a pair of strings");
  }
  format.sort_keys = truthy(args.get(3, "sort_keys"));
  return Value::string(to_json(target, format));
}

Value string_filter(const std::string& name, const Value& target, Args& args) {
  const std::string s = to_str(target);
  if (name == "trim") return Value::string(str_strip(s, args.get(0, "chars"), true, true));
  if (name == "upper") return Value::string(str_upper(s));
  if (name == "lower") return Value::string(str_lower(s));
  if (name == "capitalize") return Value::string(str_capitalize(s));
  if (name == "title") return Value::string(str_title(s));
  if (name == "replace") {
    const Value count = args.get(2, "count");
    return Value::string(str_replace(s, to_str(args.get(0, "old")), to_str(args.get(1, "new")),
                                     count.is_undefined() ? -1 : need_int(count, "replace")));
  }
  if (name == "wordcount") {  // runs of \w, as jinja2's regex counts words
    std::int64_t words = 0;
    bool in_word = false;
    for (char32_t c : decode(s)) {
      const bool w = c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0x80 && !is_py_space(c));
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value::integer(words);
  }
  return Value::undefined();
}

// int, float, abs, sum, min, max and round; any other name is not a filter.
Value number_filter(const std::string& name, const Value& target, Args& args) {
  if (name == "int") {
    if (target.kind == Value::Kind::kInt || target.kind == Value::Kind::kBool) return Value::integer(target.is_number() ? target.i : target.b);
    if (target.kind == Value::Kind::kFloat) return Value::integer(static_cast<std::int64_t>(target.f));
    try {
      std::size_t used = 0;
      const std::string s = str_strip(to_str(target), Value::none(), true, true);
      const long long v = std::stoll(s, &used);
      if (used == s.size()) return Value::integer(v);
    } catch (const std::exception&) {
    }
    const Value fallback = args.get(0, "default");
    return fallback.is_undefined() ? Value::integer(0) : fallback;
  }
  if (name == "float") {
    if (target.is_number() || target.kind == Value::Kind::kBool) return Value::real(target.as_double());
    try {
      return Value::real(std::stod(to_str(target)));
    } catch (const std::exception&) {
      const Value fallback = args.get(0, "default");
      return fallback.is_undefined() ? Value::real(0) : fallback;
    }
  }
  if (name == "abs") {
    if (target.kind == Value::Kind::kFloat) return Value::real(std::fabs(target.f));
    return Value::integer(std::llabs(need_int(target, "abs")));
  }
  if (name == "sum" || name == "min" || name == "max") {
    const List items = iterate(target);
    if (name == "sum") {
      Value total = args.get(1, "start");
      if (total.is_undefined()) total = Value::integer(0);
      const Value attribute = args.get(0, "attribute");
      for (const Value& item : items)
        total = binary_op("+", total, attribute.is_undefined() ? item : attribute_path(item, to_str(attribute)));
      return total;
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (const Value& item : items)
      if (name == "min" ? less(item, best) : less(best, item)) best = item;
    return best;
  }
  if (name == "round") {  // Python's round(): ints stay ints, halves go to even
    if (target.kind == Value::Kind::kInt || target.kind == Value::Kind::kBool) return Value::integer(target.is_number() ? target.i : target.b);
    if (target.kind != Value::Kind::kFloat) throw std::runtime_error("round expects a number, got " + type_name(target));
    const Value precision_v = args.get(0, "precision");
    const std::int64_t precision = precision_v.is_undefined() ? 0 : need_int(precision_v, "round");
    if (precision < 0 || precision > 300) {
      const double scale = std::pow(10.0, static_cast<double>(precision));
      return Value::real(std::nearbyint(target.f * scale) / scale);
    }
    // printf rounds the exact binary value half-to-even, as Python's round() does.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), target.f);
    return Value::real(std::strtod(buf, nullptr));
  }
  throw std::runtime_error("no filter named '" + name + "'");
}

}  // namespace

Value apply_filter(const std::string& name, const Value& target, Args& args) {
  if (name == "trim" || name == "upper" || name == "lower" || name == "capitalize" || name == "title" ||
      name == "replace" || name == "wordcount")
    return string_filter(name, target, args);
  if (name == "tojson") return tojson_filter(target, args);
  if (name == "length" || name == "count") return length_of(target);
  if (name == "string") return Value::string(to_str(target));
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape")
    return name == "safe" ? target : Value::string(text::html_escape(to_str(target)));
  if (name == "default" || name == "d") {
    const bool boolean = truthy(args.get(1, "boolean"));
    const bool use_default = boolean ? !truthy(target) : target.is_undefined();
    if (!use_default) return target;
    const Value fallback = args.get(0, "default_value");
    return fallback.is_undefined() ? Value::string("") : fallback;
  }
  if (name == "first" || name == "last") {
    const List items = iterate(target);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const std::string sep = to_str(args.get(0, "d"));
    const Value attribute = args.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(target)) {
      out += (first ? "" : sep) + to_str(attribute.is_undefined() ? item : attribute_path(item, to_str(attribute)));
      first = false;
    }
    return Value::string(out);
  }
  if (name == "list") return Value::make_list(iterate(target));
  if (name == "items") {
    List out;
    if (target.is_mapping())
      for (const auto& [k, v] : *target.dict) out.push_back(Value::make_tuple({Value::string(k), v}));
    else if (!target.is_undefined())
      throw std::runtime_error("items filter expects a mapping, got " + type_name(target));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    if (!target.is_mapping()) throw std::runtime_error("dictsort expects a mapping, got " + type_name(target));
    Dict entries = *target.dict;
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto& a, const auto& b) { return str_lower(a.first) < str_lower(b.first); });
    List out;
    for (const auto& [k, v] : entries) out.push_back(Value::make_tuple({Value::string(k), v}));
    return Value::make_list(std::move(out));
  }
  if (name == "reverse") {
    if (target.is_string()) {
      std::u32string cps = decode(target.s);
      std::reverse(cps.begin(), cps.end());
      return Value::string(encode(cps));
    }
    List items = iterate(target);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  // jinja2's map and select family yield nothing for a false value (none, 0, "")
  const bool generator = name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr" || name == "map";
  if (generator && !truthy(target)) return Value::make_list();
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return select_filter(name, target, args);
  if (name == "map") return map_filter(target, args);
  if (name == "sort") return sort_filter(target, args);
  if (name == "unique") {
    List out;
    for (const Value& item : iterate(target)) {
      bool seen = false;
      for (const Value& o : out) seen = seen || equal(o, item);
      if (!seen) out.push_back(item);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "indent") return indent_filter(target, args);
  return number_filter(name, target, args);
}

bool apply_test(const std::string& name, const Value& v, Args& args) {
  const Value arg = args.get(0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind == Value::Kind::kDict;
  if (name == "sequence") return v.is_list() || v.is_string() || v.kind == Value::Kind::kDict;
  if (name == "iterable") return v.is_list() || v.is_string() || v.is_mapping();
  if (name == "number") return v.is_number() || v.kind == Value::Kind::kBool;
  if (name == "integer") return v.kind == Value::Kind::kInt;
  if (name == "float") return v.kind == Value::Kind::kFloat;
  if (name == "boolean") return v.kind == Value::Kind::kBool;
  if (name == "true") return v.kind == Value::Kind::kBool && v.b;
  if (name == "false") return v.kind == Value::Kind::kBool && !v.b;
  if (name == "callable") return v.kind == Value::Kind::kCallable;
  if (name == "odd" || name == "even") return (need_int(v, name.c_str()) % 2 != 0) == (name == "odd");
  if (name == "divisibleby") {
    const std::int64_t divisor = need_int(arg, "divisibleby");
    if (divisor == 0) throw std::runtime_error("integer division or modulo by zero");
    return divisor == -1 || need_int(v, "divisibleby") % divisor == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, arg);
  if (name == "ne" || name == "!=") return !equal(v, arg);
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, arg);
  if (name == "gt" || name == "greaterthan" || name == ">") return less(arg, v);
  if (name == "le" || name == "<=") return !less(arg, v);
  if (name == "ge" || name == ">=") return !less(v, arg);
  if (name == "in") return truthy(binary_op("in", v, arg));
  if (name == "sameas") return v.kind == arg.kind && (v.kind == Value::Kind::kNone || (v.kind == Value::Kind::kBool && v.b == arg.b) || equal(v, arg));
  if (name == "lower") return to_str(v) == str_lower(to_str(v));
  if (name == "upper") return to_str(v) == str_upper(to_str(v));
  throw std::runtime_error("no test named '" + name + "'");
}

Dict make_globals() {
  Dict globals;
  globals.emplace_back("raise_exception", Value::callable([](Args& args) -> Value {
                         throw std::runtime_error("raise_exception: " + to_str(args.get(0, "message")));
                       }));
  globals.emplace_back("strftime_now", Value::callable([](Args& args) {
                         const std::string format = need_string(args.get(0, "format"), "strftime_now");
                         const std::time_t now = std::time(nullptr);
                         std::tm local{};
                         localtime_r(&now, &local);
                         char buf[512];
                         const std::size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
                         return Value::string(std::string(buf, n));
                       }));
  globals.emplace_back("range", Value::callable([](Args& args) {
                         std::int64_t start = 0, stop, step = 1;
                         if (args.positional.size() == 1) {
                           stop = need_int(args.positional[0], "range");
                         } else if (args.positional.size() >= 2) {
                           start = need_int(args.positional[0], "range");
                           stop = need_int(args.positional[1], "range");
                           if (args.positional.size() > 2) step = need_int(args.positional[2], "range");
                         } else {
                           throw std::runtime_error("range expected at least 1 argument");
                         }
                         if (step == 0) throw std::runtime_error("range() arg 3 must not be zero");
                         List out;
                         for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
                           if (out.size() >= 100000) throw std::runtime_error("range too large (over 100000 items)");
                           out.push_back(Value::integer(k));
                         }
                         return Value::make_list(std::move(out));
                       }));
  auto from_kwargs = [](Args& args, bool ns) {
    Dict entries;
    for (const Value& p : args.positional)
      if (p.is_mapping()) entries.insert(entries.end(), p.dict->begin(), p.dict->end());
    for (const auto& kv : args.keyword) entries.push_back(kv);
    return ns ? Value::make_namespace(std::move(entries)) : Value::make_dict(std::move(entries));
  };
  globals.emplace_back("namespace", Value::callable([from_kwargs](Args& args) { return from_kwargs(args, true); }));
  globals.emplace_back("dict", Value::callable([from_kwargs](Args& args) { return from_kwargs(args, false); }));
  return globals;
}

}  // namespace speculators::text::jinja
