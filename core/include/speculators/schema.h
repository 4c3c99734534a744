// A job option as an algorithm or the host declares it: key, type, default, help, group.
// The host turns every option into a --kebab-case flag (bools also get --no-kebab-case), a YAML
// key inside its group, and a line of `--describe` output. A plugin never touches the parser.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

enum class OptionType { kBool, kInt, kFloat, kString, kIntList, kFloatList, kStringList };

const char* option_type_name(OptionType type);

struct Option {
  std::string key;           // snake_case, unique across host and algorithm
  OptionType type = OptionType::kString;
  Json default_value;        // null = "unset" (the code decides, as the reference's None)
  std::string help;
  std::string group = "draft";            // YAML group (as speculators/train/config/schema.py)
  std::vector<std::string> choices;       // for strings: the accepted values (empty = any)
  // For numbers (and each element of a number list): the accepted range. NaN and infinities are
  // never accepted for a float option.
  std::optional<double> minimum;
  std::optional<double> maximum;
  bool exclusive_minimum = false;         // minimum itself is not accepted (e.g. --lr > 0)

  std::string flag() const;     // "--block-size"
  // Converts and checks `value` (from YAML or a flag) against this option; throws Error naming
  // `where` (e.g. "job.yaml: train.draft.block_size") and the expected type, choices or range.
  Json coerce(const Json& value, const std::string& where) const;
  // Parses the text after a flag, with the same checks.
  Json parse_flag_value(const std::string& text, const std::string& where) const;

  // Range declarations that chain onto a builder: opt_int("epochs", 20, ...).at_least(1).
  Option& at_least(double lo) { minimum = lo; exclusive_minimum = false; return *this; }
  Option& above(double lo) { minimum = lo; exclusive_minimum = true; return *this; }
  Option& at_most(double hi) { maximum = hi; return *this; }
  // The range as text, e.g. "> 0", ">= 1 and <= 64", or "" when unbounded.
  std::string range_text() const;
};

using Schema = std::vector<Option>;

// Builders that keep declarations one line each.
Option opt_bool(std::string key, bool def, std::string help, std::string group = "draft");
Option opt_int(std::string key, Json def, std::string help, std::string group = "draft");
Option opt_float(std::string key, Json def, std::string help, std::string group = "draft");
Option opt_string(std::string key, Json def, std::string help, std::string group = "draft",
                  std::vector<std::string> choices = {});
Option opt_int_list(std::string key, Json def, std::string help, std::string group = "draft");

// "--kebab-case" from "kebab_case".
std::string flag_from_key(const std::string& key);
// The closest string in `candidates` to `word` by edit distance, or "" if nothing is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace speculators
