// UTF-8 helpers against code points and byte sequences written out by hand from RFC 3629.
#include <catch2/catch.hpp>

#include <string>

#include "text/utf8.h"

using namespace speculators::text;

TEST_CASE("utf8 round trip of each sequence length", "[text][utf8]") {
  for (char32_t cp : {U'A', U'\u00e9', U'\u20ac', U'\U0001F600'}) {
    std::string s;
    utf8_append(s, cp);
    std::size_t i = 0;
    CHECK(utf8_next(s, i) == cp);
    CHECK(i == s.size());
    CHECK(utf8_valid(s));
  }
  std::string euro;
  utf8_append(euro, 0x20AC);
  CHECK(euro == "\xE2\x82\xAC");
}

TEST_CASE("utf8 rejects overlongs, surrogates, truncation and stray continuation bytes", "[text][utf8]") {
  for (const std::string& bad : {std::string("\xC0\xAF"), std::string("\xED\xA0\x80"), std::string("\xE2\x82"),
                                std::string("\x80"), std::string("\xF5\x80\x80\x80")}) {
    CHECK_FALSE(utf8_valid(bad));
    std::size_t i = 0;
    CHECK(utf8_next(bad, i) == 0xFFFD);
    CHECK(i == 1);
  }
  CHECK(utf8_valid("\xEF\xBF\xBD"));  // a real U+FFFD
}
