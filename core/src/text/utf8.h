// UTF-8 helpers shared by the text components (tokenizer.json, chat templates) and core's Json:
// decode one code point, encode one, check a whole string, quote one as a JSON string. Private to
// core; no LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace speculators::text {

// Decodes the code point that starts at `s[i]` and advances `i` past it. An invalid or truncated
// sequence yields U+FFFD and advances by one byte, as Python's "replace" error handler does.
char32_t utf8_next(std::string_view s, std::size_t& i);

// Appends the UTF-8 encoding of `cp` (U+FFFD for a surrogate or a value past U+10FFFF).
void utf8_append(std::string& out, char32_t cp);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool utf8_valid(std::string_view s);

// Appends `s` as a quoted JSON string, escaped as Python's json.dumps does: ", \, \n, \r, \t, \b,
// \f by name, other control characters as \u00XX; with `ensure_ascii` every non-ASCII code point
// as \uXXXX (UTF-16 surrogate pairs past U+FFFF; invalid UTF-8 as U+FFFD), else its bytes as they are.
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace speculators::text
