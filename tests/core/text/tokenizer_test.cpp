// The tokenizer against the `tokenizers` library: tokenizer_oracle.py (a ctest fixture) trains
// tokenizer.json files of six families with that library and records its ids and decoded text on a
// varied corpus; the [oracle] case demands identical results. The other cases check errors and
// small pieces against values written out by hand.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "speculators/error.h"
#include "speculators/text/tokenizer.h"
#include "text/tokenizer_parts.h"

using speculators::text::Tokenizer;
using Json = nlohmann::json;

namespace {

Json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return Json::parse(s.str());
}

std::string oracle_dir() { return std::string(SPECULATORS_TEST_BINARY_DIR) + "/tests/text_oracle"; }

// A minimal byte-level tokenizer.json with `patch` merged over it.
std::string tiny_json(const Json& patch = Json::object()) {
  Json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", Json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"\u0120", 3}, {"\u0120ab", 4}}},
        {"merges", Json::array({Json::array({"a", "b"}), "\u0120 ab"})}}},
  };
  j.merge_patch(patch);
  return j.dump();
}

std::string error_of(const std::string& json) {
  try {
    Tokenizer::from_json(json, "t.json");
  } catch (const speculators::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("tokenizer matches the tokenizers library on six families", "[.oracle][text][tokenizer]") {
  for (const char* family : {"llama3", "qwen2", "gptoss", "llama2", "mistral", "gpt2"}) {
    INFO("family " << family);
    const Tokenizer tok = Tokenizer::from_file(oracle_dir() + "/" + family + ".tokenizer.json");
    const Json expected = read_json(oracle_dir() + "/" + family + ".expected.json");
    CHECK(tok.vocab_size() == expected["vocab_size"].get<std::size_t>());
    REQUIRE(expected["cases"].size() > 30);
    for (const auto& c : expected["cases"]) {
      const std::string text = c["text"].get<std::string>();
      INFO("text: " << text);
      const auto ids = tok.encode(text, true);
      CHECK(ids == c["ids"].get<std::vector<std::uint32_t>>());
      CHECK(tok.encode(text, false) == c["ids_plain"].get<std::vector<std::uint32_t>>());
      const auto want = c["ids"].get<std::vector<std::uint32_t>>();
      CHECK(tok.decode(want, false) == c["decoded"].get<std::string>());
      CHECK(tok.decode(want, true) == c["decoded_skip"].get<std::string>());
    }
    // The same tokenizer shared by four threads (word cache, regex match data) gives the same ids.
    std::vector<int> agree(4, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
      threads.emplace_back([&, k] {
        for (const auto& c : expected["cases"]) {
          agree[k] += tok.encode(c["text"].get<std::string>(), true) == c["ids"].get<std::vector<std::uint32_t>>();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < 4; ++k) CHECK(agree[k] == static_cast<int>(expected["cases"].size()));
    for (const auto& c : expected["decode_only"]) {
      const auto ids = c["ids"].get<std::vector<std::uint32_t>>();
      CHECK(tok.decode(ids, false) == c["decoded"].get<std::string>());
      CHECK(tok.decode(ids, true) == c["decoded_skip"].get<std::string>());
    }
  }
}

TEST_CASE("tokenizer encodes a hand-made byte-level BPE", "[text][tokenizer]") {
  Json patch = {{"added_tokens", Json::array({{{"id", 5}, {"content", "<eos>"}, {"special", true}}})}};
  const Tokenizer tok = Tokenizer::from_json(tiny_json(patch));
  // " ab" is one regex piece; byte-level maps the space to U+0120; merges: a+b, then U+0120+ab.
  CHECK(tok.encode("ab ab<eos>", true) == std::vector<std::uint32_t>{2, 4, 5});
  CHECK(tok.decode({2, 4, 5}, false) == "ab ab<eos>");
  CHECK(tok.decode({2, 4, 5}, true) == "ab ab");
  CHECK(tok.decode({2, 99, 4}, false) == "ab ab");  // unknown ids are skipped
  CHECK(tok.token_to_id("<eos>") == 5u);
  CHECK(tok.id_to_token(4) == std::string("\u0120ab"));
  CHECK(tok.vocab_size() == 6);
  CHECK(tok.is_special(5));
  CHECK_FALSE(tok.is_special(2));
}

TEST_CASE("tokenizer errors name the file, the key and the component", "[text][tokenizer]") {
  CHECK_THAT(error_of(tiny_json({{"normalizer", {{"type", "BertNormalizer"}}}})),
             Catch::Contains("t.json") && Catch::Contains("normalizer.type") && Catch::Contains("BertNormalizer"));
  CHECK_THAT(error_of(tiny_json({{"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}}}})),
             Catch::Contains("pre_tokenizer.pretokenizers[0].type") && Catch::Contains("Whitespace"));
  CHECK_THAT(error_of(tiny_json({{"decoder", {{"type", "WordPiece"}}}})), Catch::Contains("decoder.type"));
  CHECK_THAT(error_of(tiny_json({{"model", {{"type", "Unigram"}}}})),
             Catch::Contains("model.type") && Catch::Contains("Unigram"));
  CHECK_THAT(error_of(tiny_json({{"model", {{"merges", Json::array({"a c"})}}}})),
             Catch::Contains("model.merges[0]") && Catch::Contains("'c'"));
  CHECK_THAT(error_of(tiny_json({{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(["}}}, {"behavior", "Isolated"}}}})),
             Catch::Contains("pre_tokenizer.pattern") && Catch::Contains("(["));
  CHECK_THAT(error_of("{not json"), Catch::Contains("t.json") && Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of(tiny_json({{"truncation", {{"max_length", 5}}}})), Catch::Contains("truncation"));
  CHECK_THAT(error_of(tiny_json({{"padding", {{"strategy", {{"Fixed", 8}}}}}})), Catch::Contains("padding"));
  const Json bad_template = Json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<x>": {"id": "<x>", "ids": [77], "tokens": ["<x>"]}}})");
  CHECK_THAT(error_of(tiny_json({{"post_processor", bad_template}})),
             Catch::Contains("post_processor") && Catch::Contains("77"));
  CHECK_THROWS_WITH(Tokenizer::from_file("/nonexistent/tokenizer.json"), Catch::Contains("/nonexistent/tokenizer.json"));
}

TEST_CASE("lossy UTF-8 replaces each maximal invalid subpart once", "[text][tokenizer]") {
  using speculators::text::detail::utf8_lossy;
  // Python: b"a\xe2\x82b".decode("utf-8", "replace") == "a\ufffdb" (a truncated 3-byte sequence).
  CHECK(utf8_lossy("a\xE2\x82" "b") == "a\xEF\xBF\xBD" "b");
  // b"\xff\xfe" -> two replacements; b"\xed\xa0\x80" (a surrogate) -> three.
  CHECK(utf8_lossy("\xFF\xFE") == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(utf8_lossy("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(utf8_lossy("\xF0\x9F\x98") == "\xEF\xBF\xBD");
  CHECK(utf8_lossy("\xC3\xA9") == "\xC3\xA9");
}

TEST_CASE("byte-level alphabet is GPT-2's bytes_to_unicode", "[text][tokenizer]") {
  using speculators::text::detail::byte_to_chars;
  using speculators::text::detail::char_to_byte;
  CHECK(byte_to_chars(' ') == "\u0120");
  CHECK(byte_to_chars('\n') == "\u010A");
  CHECK(byte_to_chars('A') == "A");
  CHECK(byte_to_chars(0xAD) == "\u0143");
  CHECK(char_to_byte(0x0120) == ' ');
  CHECK(char_to_byte(U'A') == 'A');
  CHECK(char_to_byte(0x4E00) == -1);
}
