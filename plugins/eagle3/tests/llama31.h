// Llama-3.1-8B shapes shared by the eagle3 tests: the verifier's config.json and the tensor
// table of a default eagle3 checkpoint for it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace speculators::eagle3::testing {

// meta-llama/Llama-3.1-8B-Instruct's config.json.
inline const char* kLlama31Config = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.42.3",
  "use_cache": true,
  "vocab_size": 128256
})";

// The expected config.json of a default run, without transformers_version (the rules of
// docs/compatibility.md).
const char* kExpectedConfig = R"({
  "architectures": ["Eagle3DraftModel"],
  "auto_map": {"": "config.Eagle3SpeculatorConfig"},
  "draft_vocab_size": 32000,
  "dtype": "bfloat16",
  "eagle_aux_hidden_state_layer_ids": [2, 16, 29],
  "embed_requires_grad": false,
  "fc_norm": false,
  "norm_before_fc": true,
  "norm_before_residual": true,
  "norm_output": true,
  "speculators_config": {
    "algorithm": "eagle3",
    "default_proposal_method": "greedy",
    "proposal_methods": [{"accept_tolerance": 0.0, "proposal_type": "greedy",
                          "speculative_tokens": 3, "verifier_accept_k": 1}],
    "verifier": {"architectures": ["LlamaForCausalLM"],
                 "name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}
  },
  "speculators_model_type": "eagle3",
  "speculators_version": "<package version>",
  "target_hidden_size": null,
  "tie_word_embeddings": false,
  "transformer_layer_config": {
    "attention_bias": false, "attention_dropout": 0.0, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "layer_types": ["sliding_attention"], "max_position_embeddings": 131072, "mlp_bias": false,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 1,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "sliding_window": 2048, "use_cache": true,
    "use_sliding_window": true, "vocab_size": 128256
  }
})";

// The tensors of model.safetensors of a default eagle3 run on Llama-3.1-8B.
inline const std::vector<std::tuple<std::string, std::vector<std::int64_t>, torch::ScalarType>> kLlama31Tensors = {
    {"d2t", {32000}, torch::kLong},
    {"embed_tokens.weight", {128256, 4096}, torch::kBFloat16},
    {"fc.weight", {4096, 12288}, torch::kBFloat16},
    {"input_norm.weight", {12288}, torch::kBFloat16},
    {"layers.0.hidden_norm.weight", {4096}, torch::kBFloat16},
    {"layers.0.input_layernorm.weight", {4096}, torch::kBFloat16},
    {"layers.0.mlp.down_proj.weight", {4096, 14336}, torch::kBFloat16},
    {"layers.0.mlp.gate_proj.weight", {14336, 4096}, torch::kBFloat16},
    {"layers.0.mlp.up_proj.weight", {14336, 4096}, torch::kBFloat16},
    {"layers.0.post_attention_layernorm.weight", {4096}, torch::kBFloat16},
    {"layers.0.self_attn.k_proj.weight", {1024, 8192}, torch::kBFloat16},
    {"layers.0.self_attn.o_proj.weight", {4096, 4096}, torch::kBFloat16},
    {"layers.0.self_attn.q_proj.weight", {4096, 8192}, torch::kBFloat16},
    {"layers.0.self_attn.v_proj.weight", {1024, 8192}, torch::kBFloat16},
    {"lm_head.weight", {32000, 4096}, torch::kBFloat16},
    {"norm.weight", {4096}, torch::kBFloat16},
    {"t2d", {128256}, torch::kBool},
};

}  // namespace speculators::eagle3::testing
