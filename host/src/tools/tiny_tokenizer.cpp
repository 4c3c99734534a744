// The tiny tokenizer and chat template of make-verifier --with-tokenizer (see tiny_tokenizer.h).
#include "tools/tiny_tokenizer.h"

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {

namespace {

using OJson = nlohmann::ordered_json;

const char* const kSpecial[] = {"<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"};
// Frequent English character pairs, merged in this order.
const char* const kMerges[][2] = {
    {"e", " "}, {" ", "t"}, {"t", "h"}, {"h", "e"}, {"s", " "}, {"i", "n"}, {"e", "r"}, {"a", "n"}, {"d", " "},
    {"r", "e"}, {"o", "n"}, {" ", "a"}, {"t", " "}, {"a", "t"}, {"e", "n"}, {"n", "d"}, {"o", "r"}, {"e", "s"},
    {"o", "u"}, {"i", "s"}, {"i", "t"}, {"a", "r"}, {"t", "e"}, {"a", "l"}, {"l", "e"}, {"e", "d"}, {"t", "i"},
    {"s", "t"}, {"n", "g"}, {"t", "o"}, {"y", " "}, {",", " "}, {".", " "}, {" ", "s"}, {" ", "w"}, {" ", "o"},
    {"h", "a"}, {"a", "s"}, {"o", "f"}, {"m", "e"}, {"v", "e"}, {"c", "o"}, {"d", "e"}, {"r", "o"}, {"l", "i"},
    {"r", "a"}, {"i", "c"}, {"n", "t"}, {"s", "e"}, {"e", "a"}};

const char* const kChatTemplate =
    "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

OJson added_token(std::int64_t id, const std::string& content) {
  return OJson{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
               {"rstrip", false},   {"normalized", false}, {"special", true}};
}

OJson tokenizer_json(std::int64_t vocab_size) {
  OJson vocab = OJson::object(), added = OJson::array(), merges = OJson::array();
  std::int64_t next = 0;
  for (const char* s : kSpecial) {
    added.push_back(added_token(next, s));
    vocab[s] = next++;
  }
  vocab["\n"] = next++;
  for (char c = 32; c < 127; ++c) vocab[std::string(1, c)] = next++;
  for (const auto& m : kMerges) {
    if (next >= vocab_size) break;
    const std::string merged = std::string(m[0]) + m[1];
    if (vocab.contains(merged)) continue;
    merges.push_back(OJson::array({m[0], m[1]}));
    vocab[merged] = next++;
  }
  for (std::int64_t k = 0; next < vocab_size; ++k) vocab[cat("<|reserved_", k, "|>")] = next++;
  OJson model{{"type", "BPE"},          {"dropout", nullptr},          {"unk_token", "<unk>"},
              {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
              {"byte_fallback", false}, {"ignore_merges", false},      {"vocab", vocab},
              {"merges", merges}};
  return OJson{{"version", "1.0"},       {"truncation", nullptr},  {"padding", nullptr},
               {"added_tokens", added},  {"normalizer", nullptr},  {"pre_tokenizer", nullptr},
               {"post_processor", nullptr}, {"decoder", OJson{{"type", "Fuse"}}}, {"model", model}};
}

}  // namespace

void write_tiny_tokenizer(const std::string& dir, std::int64_t vocab_size) {
  if (vocab_size < kTinyTokenizerMinVocab) {
    fail_usage(cat("--with-tokenizer: --vocab-size ", vocab_size, " is below ", kTinyTokenizerMinVocab,
                   ", the size of the tiny tokenizer's special tokens and characters"));
  }
  const std::filesystem::path d(dir);
  std::filesystem::create_directories(d);
  write_file_atomic((d / "tokenizer.json").string(), tokenizer_json(vocab_size).dump(2) + "\n");
  write_file_atomic((d / "chat_template.jinja").string(), kChatTemplate);
  const OJson config{{"tokenizer_class", "PreTrainedTokenizerFast"},
                     {"bos_token", "<s>"},
                     {"eos_token", "<|end|>"},
                     {"unk_token", "<unk>"},
                     {"pad_token", "</s>"},
                     {"model_max_length", 1000000}};
  write_file_atomic((d / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace speculators
