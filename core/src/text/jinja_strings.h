// Python's str methods as chat templates call them (strip, split, replace, title, ...), on UTF-8
// strings; case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (no final-sigma
// rule), where Python maps all of Unicode.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/jinja_value.h"

namespace speculators::text::jinja {

// str.strip/lstrip/rstrip: `chars` undefined or None strips whitespace (str.isspace).
std::string str_strip(const std::string& s, const Value& chars, bool left, bool right);
std::string str_upper(const std::string& s);
std::string str_lower(const std::string& s);
std::string str_capitalize(const std::string& s);
std::string str_title(const std::string& s);
std::string str_replace(const std::string& s, const std::string& old, const std::string& replacement, std::int64_t count);
// str.split(sep, maxsplit); `sep` undefined or None splits on runs of whitespace.
std::vector<std::string> str_split(const std::string& s, const Value& sep, std::int64_t maxsplit);

}  // namespace speculators::text::jinja
