// UTF-8 helpers shared by the text components (tokenizer.json, chat templates): decode one code
// point, encode one, and check a whole string. Private to core; no LibTorch.
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

}  // namespace speculators::text
