// Options: flag names, value coercion from YAML and flag text, and "did you mean" suggestions.
#include "speculators/schema.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

const char* option_type_name(OptionType type) {
  switch (type) {
    case OptionType::kBool: return "bool";
    case OptionType::kInt: return "int";
    case OptionType::kFloat: return "float";
    case OptionType::kString: return "string";
    case OptionType::kIntList: return "int list";
    case OptionType::kFloatList: return "float list";
    case OptionType::kStringList: return "string list";
  }
  return "?";
}

std::string flag_from_key(const std::string& key) {
  std::string out = "--";
  for (char c : key) out.push_back(c == '_' ? '-' : c);
  return out;
}

std::string Option::flag() const { return flag_from_key(key); }

namespace {

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

Json coerce_scalar(OptionType type, const Json& value, const std::string& where, const Option& opt) {
  auto bad = [&](const char* wanted) -> Json {
    fail_usage(cat(where, ": expected ", wanted, " for ", opt.key, ", got ", value.dump()));
  };
  switch (type) {
    case OptionType::kBool:
      if (value.is_bool()) return value;
      return bad("true or false");
    case OptionType::kInt:
      if (value.is_int()) return value;
      return bad("an integer");
    case OptionType::kFloat:
      if (value.is_number()) return Json(value.as_double());
      return bad("a number");
    case OptionType::kString:
      if (value.is_string()) {
        if (!opt.choices.empty() &&
            std::find(opt.choices.begin(), opt.choices.end(), value.as_string()) == opt.choices.end()) {
          fail_usage(cat(where, ": ", opt.key, " must be one of ", join(opt.choices, ", "), ", got \"",
                         value.as_string(), "\""));
        }
        return value;
      }
      // A mapping for a string option (e.g. loss_fn: {ce: 0.1, tv: 0.9}) is kept as its JSON text.
      if (value.is_object()) return Json(value.dump());
      if (value.is_number() || value.is_bool()) return Json(value.dump());
      return bad("a string");
    default: break;
  }
  return bad("a scalar");
}

OptionType element_type(OptionType list) {
  switch (list) {
    case OptionType::kIntList: return OptionType::kInt;
    case OptionType::kFloatList: return OptionType::kFloat;
    default: return OptionType::kString;
  }
}

bool is_list(OptionType t) {
  return t == OptionType::kIntList || t == OptionType::kFloatList || t == OptionType::kStringList;
}

Json parse_scalar_text(OptionType type, const std::string& text, const std::string& where, const Option& opt) {
  switch (type) {
    case OptionType::kBool: {
      std::string t = text;
      std::transform(t.begin(), t.end(), t.begin(), ::tolower);
      if (t == "true" || t == "1" || t == "yes" || t == "on") return Json(true);
      if (t == "false" || t == "0" || t == "no" || t == "off") return Json(false);
      fail_usage(cat(where, ": expected true or false for ", opt.flag(), ", got \"", text, "\""));
    }
    case OptionType::kInt: {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) {
        fail_usage(cat(where, ": expected an integer for ", opt.flag(), ", got \"", text, "\""));
      }
      return Json(v);
    }
    case OptionType::kFloat: {
      errno = 0;
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || errno == ERANGE) {
        fail_usage(cat(where, ": expected a number for ", opt.flag(), ", got \"", text, "\""));
      }
      return Json(v);
    }
    default:
      return coerce_scalar(OptionType::kString, Json(text), where, opt);
  }
}

}  // namespace

namespace {

std::string number_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::ostringstream out;
  out << v;
  return out.str();
}

// Throws a usage error naming the option, the value and the range when a number is outside it.
void check_number(const Json& value, const std::string& where, const Option& opt) {
  if (!value.is_number()) return;
  const double v = value.as_double();
  if (!std::isfinite(v)) {
    fail_usage(cat(where, ": ", opt.flag(), " must be a finite number, got ", value.dump()));
  }
  const bool below = opt.minimum && (opt.exclusive_minimum ? v <= *opt.minimum : v < *opt.minimum);
  const bool over = opt.maximum && v > *opt.maximum;
  if (below || over) fail_usage(cat(where, ": ", opt.flag(), " must be ", opt.range_text(), ", got ", value.dump()));
}

// Applies check_number to a scalar or to each element of a list.
Json checked(Json value, const std::string& where, const Option& opt) {
  if (value.is_array()) {
    for (const auto& item : value.as_array()) check_number(item, where, opt);
  } else {
    check_number(value, where, opt);
  }
  return value;
}

}  // namespace

std::string Option::range_text() const {
  std::string out;
  if (minimum) out = cat(exclusive_minimum ? "> " : ">= ", number_text(*minimum));
  if (maximum) out += cat(out.empty() ? "" : " and ", "<= ", number_text(*maximum));
  return out;
}

Json Option::coerce(const Json& value, const std::string& where) const {
  if (value.is_null()) return value;
  if (is_list(type)) {
    OptionType el = element_type(type);
    Json out = Json::array();
    if (value.is_array()) {
      for (const auto& item : value.as_array()) out.push_back(coerce_scalar(el, item, where, *this));
    } else {
      out.push_back(coerce_scalar(el, value, where, *this));
    }
    return checked(std::move(out), where, *this);
  }
  return checked(coerce_scalar(type, value, where, *this), where, *this);
}

Json Option::parse_flag_value(const std::string& text, const std::string& where) const {
  if (text == "null" || text == "none" || text == "None") {
    if (type != OptionType::kString || choices.empty()) return Json();
  }
  if (is_list(type)) {
    // "2,16,29" or "2 16 29" (the CLI joins several words with spaces).
    Json out = Json::array();
    std::string item;
    std::stringstream in(text);
    std::string token;
    while (in >> token) {
      std::stringstream parts(token);
      while (std::getline(parts, item, ',')) {
        if (!item.empty()) out.push_back(parse_scalar_text(element_type(type), item, where, *this));
      }
    }
    return checked(std::move(out), where, *this);
  }
  return checked(parse_scalar_text(type, text, where, *this), where, *this);
}

namespace {
Option make_option(std::string key, OptionType type, Json def, std::string help, std::string group,
                   std::vector<std::string> choices = {}) {
  Option o;
  o.key = std::move(key);
  o.type = type;
  o.default_value = std::move(def);
  o.help = std::move(help);
  o.group = std::move(group);
  o.choices = std::move(choices);
  return o;
}
}  // namespace

Option opt_bool(std::string key, bool def, std::string help, std::string group) {
  return make_option(std::move(key), OptionType::kBool, Json(def), std::move(help), std::move(group));
}
Option opt_int(std::string key, Json def, std::string help, std::string group) {
  return make_option(std::move(key), OptionType::kInt, std::move(def), std::move(help), std::move(group));
}
Option opt_float(std::string key, Json def, std::string help, std::string group) {
  if (def.is_int()) def = Json(def.as_double());
  return make_option(std::move(key), OptionType::kFloat, std::move(def), std::move(help), std::move(group));
}
Option opt_string(std::string key, Json def, std::string help, std::string group, std::vector<std::string> choices) {
  return make_option(std::move(key), OptionType::kString, std::move(def), std::move(help), std::move(group),
                     std::move(choices));
}
Option opt_int_list(std::string key, Json def, std::string help, std::string group) {
  return make_option(std::move(key), OptionType::kIntList, std::move(def), std::move(help), std::move(group));
}

namespace {
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::string::npos;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  // Only suggest when the word is plausibly a typo of the candidate.
  std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  return best_distance <= limit ? best : "";
}

}  // namespace speculators
