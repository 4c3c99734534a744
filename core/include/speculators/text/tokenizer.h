// A tokenizer read from a Hugging Face `tokenizer.json` file: encodes text to ids and decodes ids to
// text exactly as the `tokenizers` library does for BPE models (byte-level BPE with a Split regex
// and ByteLevel, and SentencePiece-converted BPE with Metaspace or Prepend/Replace and byte
// fallback), added and special tokens, the usual normalizers, decoders and post-processors. A
// component it does not implement is an error naming the file, the JSON key and the type.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace speculators::text {

struct TokenizerImpl;

class Tokenizer {
 public:
  // Reads and parses `path`; errors name the file and the key at fault.
  static Tokenizer from_file(const std::string& path);
  // Parses the JSON text of a tokenizer.json; `origin` names it in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& origin = "<tokenizer.json>");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text` (UTF-8; invalid sequences read as U+FFFD). With `add_special_tokens`, the
  // post-processor's template applies (e.g. a leading <|begin_of_text|> or <s>).
  std::vector<std::uint32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Text of `ids` through the decoder; ids outside the vocabulary are skipped, as are special
  // tokens when `skip_special_tokens`.
  std::string decode(const std::vector<std::uint32_t>& ids, bool skip_special_tokens = false) const;

  std::optional<std::uint32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::uint32_t id) const;
  // Model vocabulary plus added tokens (as `get_vocab_size(with_added_tokens=True)`).
  std::size_t vocab_size() const;
  // True when `id` is an added token flagged special.
  bool is_special(std::uint32_t id) const;

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
  std::unique_ptr<TokenizerImpl> impl_;
};

}  // namespace speculators::text
