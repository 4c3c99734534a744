// A random verifier that is worth drafting for: `speculators-datagen make-verifier` builds a
// Llama / Qwen3 model whose next-token distributions are peaked and depend mostly on the last
// token, so a small draft trained on its hidden states has something real to learn.
#pragma once

#include <cstdint>
#include <string>

#include "speculators/verifier.h"

namespace speculators {

struct MakeVerifierOptions {
  std::string arch = "llama";          // llama | qwen3
  std::int64_t hidden_size = 64;
  std::int64_t num_layers = 2;
  std::int64_t vocab_size = 256;
  std::int64_t intermediate_size = 0;  // 0: 3 * hidden_size
  std::int64_t num_heads = 0;          // 0: max(1, hidden_size / 32)
  std::int64_t num_kv_heads = 0;       // 0: heads / 2 when heads is even, else heads
  std::uint64_t seed = 0;
  double target_top1 = 0.7;            // mean top-1 probability aimed at, temperature 1
};

// The config with derived defaults filled in; throws Error (usage) naming the bad option.
TransformerConfig make_verifier_config(const MakeVerifierOptions& options);

struct MadeVerifier {
  VerifierModel model{nullptr};
  double mean_top1 = 0.0;  // measured on the model's own samples at temperature 1
};

MadeVerifier make_structured_verifier(const MakeVerifierOptions& options);

}  // namespace speculators
