// The gpt_oss verifier family (transformers/models/gpt_oss/modeling_gpt_oss.py: GptOssModel): its
// config keys, and its decoder layer: attention with q/k/v/o biases and a learned per-head sink
// logit in the softmax denominator, sliding or full per layer_types, and a top-k softmax router
// (with bias) over clamped-SwiGLU experts with biases.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

#include "speculators/json.h"
#include "speculators/nn/components.h"
#include "speculators/nn/transformer_config.h"

namespace speculators {

// GptOssConfig's keys that change the computation beyond the common ones.
struct GptOssSettings {
  std::int64_t num_local_experts = 128;  // alias num_experts
  std::int64_t num_experts_per_tok = 4;
  double swiglu_alpha = 1.702;
  double swiglu_limit = 7.0;
};

GptOssSettings read_gpt_oss_settings(const Json& cfg, const std::string& where);

// GptOssConfig's rope_parameters when a config names none (yarn, factor 32 over 4096 positions).
Json gpt_oss_default_rope();

// GptOssExperts: gate_up_proj [E, H, 2I] with gate = even columns, up = odd columns; biases
// gate_up_proj_bias [E, 2I], down_proj [E, I, H], down_proj_bias [E, H]. GptOssTopKRouter:
// router.weight [E, H], router.bias [E].
class GptOssMoeImpl : public torch::nn::Module {
 public:
  GptOssMoeImpl(const TransformerConfig& config, const GptOssSettings& settings);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear router{nullptr};
  std::shared_ptr<torch::nn::Module> experts;  // holds the four expert tensors below
  torch::Tensor gate_up_proj, gate_up_proj_bias, down_proj, down_proj_bias;
  std::int64_t top_k;
  double alpha, limit;
};
TORCH_MODULE(GptOssMoe);

// GptOssDecoderLayer: names self_attn.{q,k,v,o}_proj, self_attn.sinks, mlp.router, mlp.experts,
// input_layernorm, post_attention_layernorm.
class GptOssDecoderLayerImpl : public torch::nn::Module {
 public:
  GptOssDecoderLayerImpl(const TransformerConfig& config, const GptOssSettings& settings, std::int64_t layer_idx);
  // documents: [L] int64 (-1 = padding); window: the layer's sliding window, or none.
  torch::Tensor forward(const torch::Tensor& x, const nn::RotaryTables& rope, const torch::Tensor& documents,
                        std::optional<std::int64_t> window);

  nn::RMSNorm input_layernorm{nullptr};
  nn::Attention self_attn{nullptr};
  nn::RMSNorm post_attention_layernorm{nullptr};
  GptOssMoe mlp{nullptr};
  torch::Tensor sinks;  // [heads], registered on self_attn
};
TORCH_MODULE(GptOssDecoderLayer);

}  // namespace speculators
