// A tiny character-level tokenizer and chat template for the random verifiers of
// `speculators-datagen make-verifier --with-tokenizer`: DIR/tokenizer.json (a BPE model over
// printable ASCII and newline with a few merges of common English pairs, special tokens for the
// chat roles and the end of a turn), DIR/chat_template.jinja and DIR/tokenizer_config.json, so the
// conversation path (prepare, regenerate) runs on a machine without a downloaded model.
#pragma once

#include <cstdint>
#include <string>

namespace speculators {

// The smallest vocabulary the tiny tokenizer fits in (special tokens + 96 characters).
constexpr std::int64_t kTinyTokenizerMinVocab = 103;

// Writes the three files into `dir` for a model with `vocab_size` token ids; throws
// speculators::Error (usage) when vocab_size < kTinyTokenizerMinVocab.
void write_tiny_tokenizer(const std::string& dir, std::int64_t vocab_size);

}  // namespace speculators
