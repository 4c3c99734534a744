// A tiny decoder configuration shared by the component, verifier and GPU step tests (H 32, 2 layers,
// 4 heads over 2 KV heads, vocabulary 64): small enough for loop-based reference computations.
#pragma once

#include <string>

#include "speculators/nn/transformer_config.h"

namespace speculators {
namespace testing {

inline TransformerConfig tiny_config(const std::string& model_type = "llama") {
  TransformerConfig c;
  c.model_type = model_type;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.layer_types = {"full_attention", "full_attention"};
  return c;
}

}  // namespace testing
}  // namespace speculators
