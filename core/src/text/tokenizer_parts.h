// The parts of a tokenizer.json pipeline, private to core: a PCRE2 regex (UTF + UCP, JIT), the
// normalizers, pre-tokenizers, the BPE model, decoders and post-processors, each built from its
// JSON object. Every builder names the file and the JSON key of the part it rejects.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace speculators::text::detail {

using Json = nlohmann::json;

// Where a JSON value sits: the file and the key path, for error messages.
struct Where {
  std::string file;
  std::string key;
  Where at(const std::string& child) const { return {file, key.empty() ? child : key + "." + child}; }
  Where at(std::size_t index) const { return {file, key + "[" + std::to_string(index) + "]"}; }
  [[noreturn]] void fail(const std::string& what) const;
};

// Typed field access that fails naming the key.
const Json& field(const Json& obj, const char* name, const Where& w);
std::string string_field(const Json& obj, const char* name, const Where& w);
bool bool_field(const Json& obj, const char* name, bool fallback, const Where& w);

// A compiled PCRE2 pattern in UTF and Unicode-property mode, JIT-compiled when available.
class Regex {
 public:
  Regex(const std::string& pattern, const Where& w);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Finds the first match at or after `from` in `s` (valid UTF-8). Returns false when none.
  bool find(std::string_view s, std::size_t from, std::size_t& begin, std::size_t& end) const;

 private:
  void* code_ = nullptr;
  bool jit_ = false;
};

// A part of the input while encoding: its text, the byte offset in the input where it begins,
// and the id when it is an added token (kept whole, never normalized or split further).
struct Piece {
  std::string text;
  std::size_t origin = 0;
  std::int64_t added_id = -1;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};
std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& w);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits or rewrites one piece, appending the results to `out`; empty results are dropped.
  virtual void split(Piece&& piece, std::vector<Piece>& out) const = 0;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& w);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const Json& j, const Where& w);

// Special tokens a post-processor adds around a single sequence.
struct PostTemplate {
  std::vector<std::uint32_t> before;
  std::vector<std::uint32_t> after;
};
PostTemplate make_post_processor(const Json& j, const Where& w);

// Byte-level BPE and SentencePiece-style BPE (byte fallback, unk fusing, ignore_merges).
class BpeModel {
 public:
  BpeModel(const Json& j, const Where& w);
  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<std::uint32_t>& out) const;
  const std::string* id_to_token(std::uint32_t id) const;
  bool token_to_id(std::string_view token, std::uint32_t& id) const;
  std::size_t size() const { return vocab_.size(); }

 private:
  void load_merges(const Json& merges, const Where& w);
  void merge_word(std::string_view word, std::vector<std::uint32_t>& out) const;
  void initial_symbols(std::string_view word, std::vector<std::uint32_t>& ids,
                       std::vector<std::uint32_t>& lens) const;

  std::vector<std::string> tokens_;  // by id; empty where the vocabulary has a gap
  std::unordered_map<std::string_view, std::uint32_t> vocab_;  // views into tokens_
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> merges_;  // -> rank, id
  std::int64_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  std::vector<std::int64_t> char_ids_;  // id of each one-character token below U+0800, or -1
  std::uint32_t byte_ids_[256] = {};
  bool have_byte_ids_ = false;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::uint32_t>> cache_;
};

// Byte <-> character table of GPT-2's byte-level alphabet.
const std::string& byte_to_chars(unsigned char b);
// The byte a byte-level character stands for, or -1.
int char_to_byte(char32_t c);

// Unicode White_Space (Rust's char::is_whitespace).
bool is_white_space(char32_t c);

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace speculators::text::detail
