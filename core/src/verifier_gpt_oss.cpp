// The gpt_oss verifier family, as transformers/models/gpt_oss/modeling_gpt_oss.py computes it
// (eager_attention_forward with sinks, GptOssTopKRouter, GptOssExperts._apply_gate,
// GptOssDecoderLayer) with the keys of configuration_gpt_oss.py: GptOssConfig. See
// verifier_gpt_oss.h.
#include "verifier_gpt_oss.h"

#include <cmath>
#include <limits>
#include <vector>

#include "config_fields.h"
#include "document_mask.h"
#include "speculators/error.h"

namespace speculators {
namespace {

using config_fields::optional_double;
using config_fields::optional_int;

// Softmax attention within documents (optionally a sliding window: q - W < k <= q) whose
// denominator also holds the head's sink logit: softmax(cat(scores, sink))[..., :-1]. Queries are
// processed in blocks so memory is O(L * block).
torch::Tensor sink_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& documents, std::optional<std::int64_t> window,
                             const torch::Tensor& sinks) {
  constexpr std::int64_t kBlock = 512;
  const std::int64_t b = q.size(0), nh = q.size(1), l = q.size(2), hd = q.size(3), rep = nh / k.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const torch::Tensor doc = documents.to(q.device(), torch::kLong);
  const torch::Tensor sink = sinks.to(q.scalar_type()).view({1, nh, 1, 1});
  std::vector<torch::Tensor> outputs;
  for (std::int64_t q0 = 0; q0 < l; q0 += kBlock) {
    const std::int64_t q1 = std::min(l, q0 + kBlock);
    const BlockMask m = causal_document_block(doc, q0, q1);
    torch::Tensor allowed = m.allowed;
    if (window) allowed = allowed.logical_and(m.ki > m.qi - *window);
    allowed = allowed.logical_or(m.ki == m.qi);  // a padding query sees itself, never nothing
    const torch::Tensor kr = k.slice(2, 0, q1).repeat_interleave(rep, 1);
    const torch::Tensor vr = v.slice(2, 0, q1).repeat_interleave(rep, 1);
    torch::Tensor scores = torch::matmul(q.slice(2, q0, q1), kr.transpose(2, 3)) * scale;
    scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
    torch::Tensor combined = torch::cat({scores, sink.expand({b, nh, q1 - q0, 1})}, -1);
    combined = combined - std::get<0>(combined.max(-1, /*keepdim=*/true));
    const torch::Tensor probs = torch::softmax(combined, -1).slice(-1, 0, q1);
    outputs.push_back(torch::matmul(probs.to(vr.scalar_type()), vr));
  }
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs, 2);
}

}  // namespace

GptOssSettings read_gpt_oss_settings(const Json& cfg, const std::string& where) {
  GptOssSettings s;
  // attribute_map: num_experts is num_local_experts.
  const char* experts_key = cfg.contains("num_local_experts") ? "num_local_experts" : "num_experts";
  s.num_local_experts = optional_int(cfg, experts_key, 128, where);
  s.num_experts_per_tok = optional_int(cfg, "num_experts_per_tok", 4, where);
  s.swiglu_alpha = optional_double(cfg, "swiglu_alpha", 1.702, where);
  s.swiglu_limit = optional_double(cfg, "swiglu_limit", 7.0, where);
  if (s.num_local_experts <= 0 || s.num_experts_per_tok <= 0 || s.num_experts_per_tok > s.num_local_experts) {
    fail_usage(cat(where, ": num_experts_per_tok (", s.num_experts_per_tok, ") must be in [1, num_local_experts = ",
                   s.num_local_experts, "]"));
  }
  if (!(s.swiglu_limit > 0)) fail_usage(cat(where, ": swiglu_limit must be positive, got ", s.swiglu_limit));
  return s;
}

Json gpt_oss_default_rope() {
  Json rope = Json::object();
  rope["rope_type"] = "yarn";
  rope["factor"] = 32.0;
  rope["beta_fast"] = 32.0;
  rope["beta_slow"] = 1.0;
  rope["truncate"] = false;
  rope["original_max_position_embeddings"] = Json(static_cast<long long>(4096));
  return rope;
}

GptOssMoeImpl::GptOssMoeImpl(const TransformerConfig& config, const GptOssSettings& settings)
    : top_k(settings.num_experts_per_tok), alpha(settings.swiglu_alpha), limit(settings.swiglu_limit) {
  const std::int64_t e = settings.num_local_experts, h = config.hidden_size, i = config.intermediate_size;
  router = register_module("router", torch::nn::Linear(torch::nn::LinearOptions(h, e).bias(true)));
  experts = register_module("experts", std::make_shared<torch::nn::Module>());
  gate_up_proj = experts->register_parameter("gate_up_proj", torch::zeros({e, h, 2 * i}));
  gate_up_proj_bias = experts->register_parameter("gate_up_proj_bias", torch::zeros({e, 2 * i}));
  down_proj = experts->register_parameter("down_proj", torch::zeros({e, i, h}));
  down_proj_bias = experts->register_parameter("down_proj_bias", torch::zeros({e, h}));
}

torch::Tensor GptOssMoeImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const torch::Tensor flat = x.reshape({-1, shape.back()});
  auto [top_values, top_indices] = torch::topk(router(flat), top_k, -1);
  const torch::Tensor weights = torch::softmax(top_values, 1);  // over the chosen experts only
  torch::Tensor out = torch::zeros_like(flat);
  for (std::int64_t e = 0; e < gate_up_proj.size(0); ++e) {
    const torch::Tensor hit = (top_indices == e).nonzero();  // [n, 2]: token, slot
    if (hit.size(0) == 0) continue;
    const torch::Tensor tokens = hit.select(1, 0);
    const torch::Tensor gate_up = flat.index_select(0, tokens).matmul(gate_up_proj[e]) + gate_up_proj_bias[e];
    // _apply_gate: gate and up interleaved; gate clamped above, up on both sides.
    const torch::Tensor gate = gate_up.slice(-1, 0, c10::nullopt, 2).clamp_max(limit);
    const torch::Tensor up = gate_up.slice(-1, 1, c10::nullopt, 2).clamp(-limit, limit);
    const torch::Tensor glu = gate * torch::sigmoid(gate * alpha);
    const torch::Tensor y = ((up + 1) * glu).matmul(down_proj[e]) + down_proj_bias[e];
    out.index_add_(0, tokens, y * weights.index({tokens, hit.select(1, 1)}).unsqueeze(-1));
  }
  return out.reshape(shape);
}

GptOssDecoderLayerImpl::GptOssDecoderLayerImpl(const TransformerConfig& config, const GptOssSettings& settings,
                                               std::int64_t layer_idx) {
  (void)layer_idx;  // the layer's window comes from TransformerConfig::window_of_layer at forward time
  TransformerConfig attention = config;
  attention.model_type = "llama";  // q/k/v/o projections, all with attention_bias; no per-head norms
  self_attn = register_module("self_attn", nn::Attention(attention, config.hidden_size));
  sinks = self_attn->register_parameter("sinks", torch::zeros({config.num_attention_heads}));
  mlp = register_module("mlp", GptOssMoe(config, settings));
  input_layernorm = register_module("input_layernorm", nn::RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", nn::RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor GptOssDecoderLayerImpl::forward(const torch::Tensor& x, const nn::RotaryTables& rope,
                                              const torch::Tensor& documents, std::optional<std::int64_t> window) {
  // GptOssRotaryEmbedding rotates the two halves of each head, as apply_rotary does.
  const nn::AttentionImpl::QKV p = self_attn->project(input_layernorm(x), rope);
  const torch::Tensor h = x + self_attn->output(sink_attention(p.q, p.k, p.v, documents, window, sinks));
  return h + mlp(post_attention_layernorm(h));
}

}  // namespace speculators
