// The llama4_text verifier family (transformers/models/llama4/modeling_llama4.py: Llama4TextModel):
// its config keys, its decoder layer (interleaved complex rotary on RoPE layers, QK L2 norm,
// attention temperature tuning on NoPE layers, chunked attention, dense MLP or a shared expert
// plus sigmoid-routed experts) and the per-layer step the verifier's forward runs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"
#include "speculators/nn/components.h"
#include "speculators/nn/transformer_config.h"

namespace speculators {

// Llama4TextConfig's keys that change the computation, resolved as its __post_init__ does.
struct Llama4Settings {
  std::int64_t num_local_experts = 16;
  std::int64_t num_experts_per_tok = 1;
  std::int64_t intermediate_size_mlp = 16384;  // dense layers (experts use intermediate_size)
  std::vector<std::int64_t> moe_layers;        // from interleave_moe_layer_step when absent
  std::vector<bool> rope_layers;               // no_rope_layers: 1 = RoPE layer, 0 = NoPE layer
  std::vector<bool> chunked_layers;            // layer_types == "chunked_attention"
  std::optional<std::int64_t> attention_chunk_size;
  bool use_qk_norm = true;                     // L2 norm of q and k on RoPE layers
  bool attn_temperature_tuning = true;         // q scaling on NoPE layers
  double floor_scale = 8192;
  double attn_scale = 0.1;

  bool is_moe_layer(std::int64_t i) const;
};

// Reads and checks the llama4_text keys of `cfg` for a config `c` whose widths are already read;
// every error names `where` and the key.
Llama4Settings read_llama4_settings(const Json& cfg, const TransformerConfig& c, const std::string& where);

// Llama4TextExperts: gate_up_proj [E, H, 2I] (x @ W; gate = first I columns), down_proj [E, I, H].
class Llama4ExpertsImpl : public torch::nn::Module {
 public:
  Llama4ExpertsImpl(std::int64_t experts, std::int64_t hidden, std::int64_t intermediate);
  torch::Tensor gate_up_proj, down_proj;
};
TORCH_MODULE(Llama4Experts);

// Llama4TextMoe: shared_expert(x) + sum over experts e of expert_e(x * sigmoid(router score_e)),
// where only the top-k router logits keep a nonzero score.
class Llama4MoeImpl : public torch::nn::Module {
 public:
  Llama4MoeImpl(const TransformerConfig& config, const Llama4Settings& settings);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear router{nullptr};
  Llama4Experts experts{nullptr};
  nn::MLP shared_expert{nullptr};
  std::int64_t top_k;
  std::string act;
};
TORCH_MODULE(Llama4Moe);

// What every layer of one forward shares: fp32 rotary tables, the positions that pick attention
// chunks and temperature scales, and the document ids.
struct Llama4Inputs {
  nn::RotaryTables rope;   // [B, L, hd] fp32 (cos/sin of the duplicated angles)
  torch::Tensor positions; // [B, L] int64
  torch::Tensor documents; // [L] int64, -1 = padding
};

// Llama4TextDecoderLayer with checkpoint names self_attn.*, feed_forward.*, input_layernorm,
// post_attention_layernorm.
class Llama4DecoderLayerImpl : public torch::nn::Module {
 public:
  Llama4DecoderLayerImpl(const TransformerConfig& config, const Llama4Settings& settings, std::int64_t layer_idx);
  torch::Tensor forward(const torch::Tensor& x, const Llama4Inputs& inputs);

  nn::RMSNorm input_layernorm{nullptr};
  nn::Attention self_attn{nullptr};  // only its projections are used
  nn::RMSNorm post_attention_layernorm{nullptr};
  nn::MLP dense{nullptr};            // registered as "feed_forward" on dense layers
  Llama4Moe moe{nullptr};            // registered as "feed_forward" on MoE layers

 private:
  torch::Tensor attention(const torch::Tensor& x, const Llama4Inputs& inputs);
  bool use_rope_;
  bool chunked_;
  bool qk_norm_;
  bool temperature_;
  std::int64_t chunk_size_;
  double eps_, floor_scale_, attn_scale_;
};
TORCH_MODULE(Llama4DecoderLayer);

}  // namespace speculators
