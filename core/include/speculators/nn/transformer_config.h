// The decoder configuration shared by verifiers and drafts: the fields of a Hugging Face
// LlamaConfig / Qwen3Config that change what is computed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

struct RopeScaling {
  std::string rope_type = "default";   // "default" or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
  Json raw;                            // the verifier's dict, minus dropped keys, written back as is
};

struct TransformerConfig {
  std::string model_type = "llama";    // "llama" or "qwen3"
  std::vector<std::string> architectures;
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;           // hidden_size / num_attention_heads when absent
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  std::string hidden_act = "silu";
  bool attention_bias = false;
  double attention_dropout = 0.0;
  bool mlp_bias = false;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  std::optional<std::int64_t> sliding_window;     // null = no window
  std::vector<std::string> layer_types;           // "full_attention" / "sliding_attention"
  std::int64_t max_window_layers = 28;            // qwen3 only: first sliding layer when layer_types is absent
  std::optional<std::int64_t> pad_token_id;
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;

  // From a Hugging Face config.json object (multimodal configs: the text_config is used).
  // `origin` names the file in errors. Unsupported model types are refused.
  static TransformerConfig from_hf_json(const Json& config, const std::string& origin = "config.json");
  static TransformerConfig from_file(const std::string& path);
  // Hugging Face config.json for a verifier written by `speculators-datagen make-verifier`.
  Json to_hf_json() const;
  // The draft's `transformer_layer_config` object with exactly the keys the reference writes
  // (docs/compatibility.md).
  Json to_layer_config_json() const;
  // Window of layer `i` (nullopt = full attention), from layer_types and sliding_window.
  std::optional<std::int64_t> window_of_layer(std::int64_t i) const;
  // Throws Error if shapes are inconsistent (heads do not divide, etc.).
  void validate(const std::string& origin = "config") const;
};

}  // namespace speculators
