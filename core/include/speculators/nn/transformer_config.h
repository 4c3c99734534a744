// The decoder configuration shared by verifiers and drafts: the fields of a Hugging Face
// LlamaConfig / Qwen2Config / Qwen3Config / MistralConfig / Qwen3MoeConfig (and the common fields of
// Llama4TextConfig / GptOssConfig, whose own keys their verifier code reads) that change what is
// computed, with the rotary parameters in either spelling (`rope_theta` + `rope_scaling`, or
// transformers 5's `rope_parameters`). docs/compatibility.md lists what each family matches.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

// transformers/modeling_rope_utils.py: ROPE_INIT_FUNCTIONS, one field set per rope_type.
struct RopeScaling {
  std::string rope_type = "default";   // default, linear, dynamic, yarn, longrope, llama3
  double factor = 1.0;                 // linear, dynamic, yarn, longrope, llama3
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
  std::int64_t original_max_position_embeddings = 8192;  // yarn, longrope, llama3
  std::optional<double> attention_factor;                // yarn, longrope (cos/sin scale)
  double beta_fast = 32.0;             // yarn
  double beta_slow = 1.0;              // yarn
  std::optional<double> mscale;        // yarn
  std::optional<double> mscale_all_dim;  // yarn
  bool truncate = true;                // yarn
  std::vector<double> short_factor;    // longrope
  std::vector<double> long_factor;     // longrope
  Json raw;                            // the verifier's dict, minus dropped keys, written back as is
};

struct TransformerConfig {
  std::string model_type = "llama";    // llama, qwen2, qwen3, mistral, qwen3_moe, llama4_text, gpt_oss
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
  std::vector<std::string> layer_types;           // "full_attention" / "sliding_attention" (llama4_text: "chunked_attention")
  std::int64_t max_window_layers = 28;            // qwen3 only: first sliding layer when layer_types is absent
  // Qwen3-MoE sparse blocks (num_experts == 0: every layer is dense).
  std::int64_t num_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  std::int64_t decoder_sparse_step = 1;
  std::vector<std::int64_t> mlp_only_layers;
  // Read from a family this project cannot run (`from_hf_json` with widths_only_ok): only the
  // widths and the rotary parameters are meaningful, enough for a trainer that reads pre-computed
  // features and needs just the verifier's embedding, final norm and head. No verifier is built.
  bool widths_only = false;
  // llama4_text, gpt_oss: the decoder's config.json object as read; the family's own code
  // (core/src/verifier_llama4.cpp, verifier_gpt_oss.cpp) reads its further keys from it. Null for
  // the other families.
  Json family_config;
  std::optional<std::int64_t> pad_token_id;
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;

  // From a Hugging Face config.json object (multimodal configs: the text_config is used).
  // `origin` names the file in errors. Unsupported model types are refused, unless
  // `widths_only_ok`: then they load with `widths_only` set (the rotary parameters are still
  // read strictly, since a draft copies them).
  static TransformerConfig from_hf_json(const Json& config, const std::string& origin = "config.json",
                                        bool widths_only_ok = false);
  static TransformerConfig from_file(const std::string& path);
  // Hugging Face config.json for a verifier written by `speculators-datagen make-verifier`.
  Json to_hf_json() const;
  // The draft's `transformer_layer_config` object with exactly the keys the reference writes
  // (docs/compatibility.md).
  Json to_layer_config_json() const;
  // Window of layer `i` (nullopt = full attention), from layer_types and sliding_window.
  std::optional<std::int64_t> window_of_layer(std::int64_t i) const;
  // Whether layer `i` is a routed-experts block (Qwen3MoeDecoderLayer's rule).
  bool is_sparse_layer(std::int64_t i) const;
  // Throws Error if shapes are inconsistent (heads do not divide, etc.).
  void validate(const std::string& origin = "config") const;
};

}  // namespace speculators
