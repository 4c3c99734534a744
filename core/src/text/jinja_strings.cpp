// Python's str, dict and list methods for chat templates (the ones jinja2's sandbox allows and
// real templates call), dispatched from `value.method(...)` expressions.
#include "text/jinja_strings.h"

#include <algorithm>
#include <stdexcept>

#include "text/jinja_eval.h"

namespace speculators::text::jinja {

std::string str_strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::u32string cps = decode(s);
  const bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace && !chars.is_string()) throw std::runtime_error("strip arg must be None or str");
  const std::u32string set = whitespace ? std::u32string() : decode(chars.s);
  auto strip = [&](char32_t c) { return whitespace ? is_py_space(c) : set.find(c) != std::u32string::npos; };
  std::size_t begin = 0, end = cps.size();
  if (left)
    while (begin < end && strip(cps[begin])) ++begin;
  if (right)
    while (end > begin && strip(cps[end - 1])) --end;
  return encode(cps.substr(begin, end - begin));
}

namespace {

// Simple case mapping of Latin-1, Latin Extended-A, Greek and Cyrillic, besides ASCII.
char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17F) {
    const bool odd_lower = (c >= 0x100 && c < 0x138) || (c > 0x149 && c < 0x178);
    if (odd_lower ? (c % 2 == 1) : (c % 2 == 0)) return c - 1;
    return c;
  }
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if (c >= 0x3B1 && c <= 0x3C9) return c == 0x3C2 ? 0x3A3 : c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17F) {
    const bool odd_lower = (c >= 0x100 && c < 0x138) || (c > 0x149 && c < 0x178);
    if (odd_lower ? (c % 2 == 0) : (c % 2 == 1)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool is_cased(char32_t c) { return to_upper(c) != c || to_lower(c) != c || c == 0xDF; }

void append_upper(std::u32string& out, char32_t c) {
  if (c == 0xDF) out += U"SS";  // Python's full mapping of sharp s
  else out += to_upper(c);
}

}  // namespace

std::string str_upper(const std::string& s) {
  std::u32string out;
  for (char32_t c : decode(s)) append_upper(out, c);
  return encode(out);
}

std::string str_lower(const std::string& s) {
  std::u32string out;
  for (char32_t c : decode(s)) out += to_lower(c);
  return encode(out);
}

std::string str_capitalize(const std::string& s) {
  const std::u32string cps = decode(s);
  std::u32string out;
  for (std::size_t k = 0; k < cps.size(); ++k) {
    if (k == 0) append_upper(out, cps[k]);
    else out += to_lower(cps[k]);
  }
  return encode(out);
}

std::string str_title(const std::string& s) {
  std::u32string out;
  bool prev_cased = false;
  for (char32_t c : decode(s)) {
    const bool cased = is_cased(c);
    if (cased && !prev_cased) {
      if (c == 0xDF) out += U"Ss";
      else out += to_upper(c);
    } else {
      out += cased ? to_lower(c) : c;
    }
    prev_cased = cased;
  }
  return encode(out);
}

std::string str_replace(const std::string& s, const std::string& old, const std::string& replacement,
                        std::int64_t count) {
  std::string out;
  std::size_t pos = 0;
  std::int64_t done = 0;
  if (old.empty()) {  // Python inserts the replacement between code points
    const std::u32string cps = decode(s);
    for (std::size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      if (k < cps.size()) out += encode(cps.substr(k, 1));
    }
    return out;
  }
  while (count < 0 || done < count) {
    const std::size_t found = s.find(old, pos);
    if (found == std::string::npos) break;
    out += s.substr(pos, found - pos) + replacement;
    pos = found + old.size();
    ++done;
  }
  return out + s.substr(pos);
}

std::vector<std::string> str_split(const std::string& s, const Value& sep, std::int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_undefined() || sep.is_none()) {
    const std::u32string cps = decode(s);
    std::size_t k = 0;
    while (k < cps.size()) {
      while (k < cps.size() && is_py_space(cps[k])) ++k;
      if (k >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) >= maxsplit) {
        std::u32string rest = cps.substr(k);
        while (!rest.empty() && is_py_space(rest.back())) rest.pop_back();
        out.push_back(encode(rest));
        break;
      }
      const std::size_t start = k;
      while (k < cps.size() && !is_py_space(cps[k])) ++k;
      out.push_back(encode(cps.substr(start, k - start)));
    }
    return out;
  }
  if (!sep.is_string()) throw std::runtime_error("must be str or None, not " + type_name(sep));
  if (sep.s.empty()) throw std::runtime_error("empty separator");
  std::size_t pos = 0;
  for (;;) {
    const std::size_t found = s.find(sep.s, pos);
    if (found == std::string::npos || (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) >= maxsplit)) break;
    out.push_back(s.substr(pos, found - pos));
    pos = found + sep.s.size();
  }
  out.push_back(s.substr(pos));
  return out;
}

namespace {

Value string_list(const std::vector<std::string>& parts) {
  List out;
  for (const auto& p : parts) out.push_back(Value::string(p));
  return Value::make_list(std::move(out));
}

std::int64_t int_arg(const Value& v, std::int64_t fallback) {
  if (v.is_undefined() || v.is_none()) return fallback;
  if (v.kind != Value::Kind::kInt) throw std::runtime_error("an integer is required, got " + type_name(v));
  return v.i;
}

// startswith/endswith take a string or a tuple (list) of strings.
bool affix(const std::string& s, const Value& arg, bool prefix) {
  if (arg.is_list()) {
    for (const Value& a : *arg.list)
      if (affix(s, a, prefix)) return true;
    return false;
  }
  if (!arg.is_string()) throw std::runtime_error("startswith/endswith argument must be str or a tuple of str");
  const std::string& a = arg.s;
  if (a.size() > s.size()) return false;
  return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
}

Value string_method(const std::string& s, const std::string& name, Args& args) {
  const Value a0 = args.get(0, "");
  if (name == "startswith" || name == "endswith") return Value::boolean(affix(s, a0, name == "startswith"));
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return Value::string(str_strip(s, args.get(0, "chars"), name != "rstrip", name != "lstrip"));
  if (name == "split") return string_list(str_split(s, args.get(0, "sep"), int_arg(args.get(1, "maxsplit"), -1)));
  if (name == "rsplit") {
    const Value maxsplit = args.get(1, "maxsplit");
    const Value sep = args.get(0, "sep");
    if (int_arg(maxsplit, -1) < 0 || sep.is_undefined() || sep.is_none()) return string_list(str_split(s, sep, int_arg(maxsplit, -1)));
    // rsplit with a limit: split everything, then rejoin the leading parts.
    std::vector<std::string> parts = str_split(s, sep, -1);
    const auto keep = static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(parts.size()) - 1 - maxsplit.i));
    std::vector<std::string> out;
    std::string head;
    for (std::size_t k = 0; k <= keep && k < parts.size(); ++k) head += (k ? sep.s : "") + parts[k];
    out.push_back(head);
    for (std::size_t k = keep + 1; k < parts.size(); ++k) out.push_back(parts[k]);
    return string_list(out);
  }
  if (name == "upper") return Value::string(str_upper(s));
  if (name == "lower") return Value::string(str_lower(s));
  if (name == "title") return Value::string(str_title(s));
  if (name == "capitalize") return Value::string(str_capitalize(s));
  if (name == "replace")
    return Value::string(str_replace(s, to_str(a0), to_str(args.get(1, "new")), int_arg(args.get(2, "count"), -1)));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    if (!a0.is_string()) throw std::runtime_error(name + " expects a string");
    const std::size_t at = name[0] == 'r' ? s.rfind(a0.s) : s.find(a0.s);
    if (at == std::string::npos && (name == "index" || name == "rindex")) throw std::runtime_error("substring not found");
    return Value::integer(at == std::string::npos ? -1 : static_cast<std::int64_t>(decode(s.substr(0, at)).size()));
  }
  if (name == "count") {
    if (!a0.is_string() || a0.s.empty()) throw std::runtime_error("count expects a non-empty string");
    std::int64_t n = 0;
    for (std::size_t at = s.find(a0.s); at != std::string::npos; at = s.find(a0.s, at + a0.s.size())) ++n;
    return Value::integer(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& item : iterate(a0)) {
      if (!item.is_string()) throw std::runtime_error("sequence item: expected str instance, " + type_name(item) + " found");
      out += (first ? "" : s) + item.s;
      first = false;
    }
    return Value::string(out);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
    const std::u32string cps = decode(s);
    bool ok = !cps.empty();
    for (char32_t c : cps) {
      const bool digit = c >= '0' && c <= '9', alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      ok = ok && (name == "isdigit" ? digit : name == "isalpha" ? alpha : name == "isspace" ? is_py_space(c) : digit || alpha);
    }
    return Value::boolean(ok);
  }
  throw std::runtime_error("'str' object has no method '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name, Args& args) {
  if (name == "items" || name == "keys" || name == "values") {
    List out;
    for (const auto& [k, v] : *d.dict)
      out.push_back(name == "items" ? Value::make_tuple({Value::string(k), v}) : name == "keys" ? Value::string(k) : v);
    return Value::make_list(std::move(out));
  }
  if (name == "get") {
    const Value key = args.get(0, "key");
    if (const Value* v = d.find(to_str(key))) return *v;
    const Value fallback = args.get(1, "default");
    return fallback.is_undefined() ? Value::none() : fallback;
  }
  throw std::runtime_error("'dict' object has no method '" + name + "'");
}

}  // namespace

Value call_method(const Value& target, const std::string& name, Args& args) {
  if (target.is_undefined()) undefined_error(target);
  if (target.is_string()) return string_method(target.s, name, args);
  if (target.kind == Value::Kind::kDict) return dict_method(target, name, args);
  if (target.is_list()) {
    if (name == "index" || name == "count") {
      std::int64_t n = 0;
      for (std::size_t k = 0; k < target.list->size(); ++k) {
        if (!equal((*target.list)[k], args.get(0, "value"))) continue;
        if (name == "index") return Value::integer(static_cast<std::int64_t>(k));
        ++n;
      }
      if (name == "index") throw std::runtime_error("value is not in list");
      return Value::integer(n);
    }
    if (name == "append" || name == "pop" || name == "insert" || name == "extend" || name == "remove")
      throw std::runtime_error("lists are immutable in chat templates: '" + name + "' is not allowed");
  }
  throw std::runtime_error("'" + type_name(target) + "' object has no method '" + name + "'");
}

}  // namespace speculators::text::jinja
