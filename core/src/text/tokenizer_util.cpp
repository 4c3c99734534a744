// Shared pieces of the tokenizer: JSON field access with errors that name file and key, the PCRE2
// regex wrapper, GPT-2's byte-level alphabet and lossy UTF-8 decoding.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>

#include "speculators/error.h"
#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text::detail {

void Where::fail(const std::string& what) const {
  speculators::fail_usage(file + ": " + (key.empty() ? std::string("(top level)") : key) + ": " + what);
}

const Json& field(const Json& obj, const char* name, const Where& w) {
  if (!obj.is_object()) w.fail("expected a JSON object");
  auto it = obj.find(name);
  if (it == obj.end()) w.at(name).fail("missing");
  return *it;
}

std::string string_field(const Json& obj, const char* name, const Where& w) {
  const Json& v = field(obj, name, w);
  if (!v.is_string()) w.at(name).fail("expected a string, got " + v.dump());
  return v.get<std::string>();
}

bool bool_field(const Json& obj, const char* name, bool fallback, const Where& w) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) w.at(name).fail("expected true or false, got " + it->dump());
  return it->get<bool>();
}

// ---- Regex ----

Regex::Regex(const std::string& pattern, const Where& w) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    w.fail("regex " + pattern + " does not compile at offset " + std::to_string(offset) + ": " +
           reinterpret_cast<const char*>(msg));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

namespace {
struct MatchData {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  ~MatchData() { pcre2_match_data_free(data); }
};
}  // namespace

bool Regex::find(std::string_view s, std::size_t from, std::size_t& begin, std::size_t& end) const {
  thread_local MatchData md;
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  int rc = jit_ ? pcre2_jit_match(code, subject, s.size(), from, 0, md.data, nullptr)
                : PCRE2_ERROR_JIT_BADOPTION;
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION) {
    rc = pcre2_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md.data, nullptr);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    speculators::fail_data(std::string("tokenizer regex match failed: ") + reinterpret_cast<const char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
  begin = ov[0];
  end = ov[1];
  return true;
}

// ---- byte-level alphabet (GPT-2's bytes_to_unicode) ----

namespace {
struct ByteTables {
  std::array<std::string, 256> to_chars;
  std::array<int, 324> to_byte;  // every character of the alphabet is below U+0144
  ByteTables() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      utf8_append(to_chars[b], c);
      to_byte[c] = b;
    }
  }
};
const ByteTables& tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::string& byte_to_chars(unsigned char b) { return tables().to_chars[b]; }

int char_to_byte(char32_t c) { return c < 324 ? tables().to_byte[c] : -1; }

// ---- lossy UTF-8 ----

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char b = at(i);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    int need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    }
    std::size_t k = i + 1;
    int got = 0;
    while (got < need && k < s.size()) {
      const unsigned char c = at(k);
      const bool ok = got == 0 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
      if (!ok) break;
      ++k;
      ++got;
    }
    if (need > 0 && got == need) {
      out.append(s.substr(i, k - i));
    } else {
      out += "\xEF\xBF\xBD";
    }
    i = k;
  }
  return out;
}

}  // namespace speculators::text::detail
