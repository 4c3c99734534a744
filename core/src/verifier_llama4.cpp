// The llama4_text verifier family, as transformers/models/llama4/modeling_llama4.py computes it
// (Llama4TextAttention, Llama4TextMoe, Llama4TextDecoderLayer) with the keys of
// configuration_llama4.py: Llama4TextConfig. See verifier_llama4.h.
#include "verifier_llama4.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "config_fields.h"
#include "document_mask.h"
#include "speculators/error.h"

namespace speculators {
namespace {

using config_fields::int_value;
using config_fields::optional_bool;
using config_fields::optional_double;
using config_fields::optional_int;

bool present(const Json& obj, const char* key) { return obj.contains(key) && !obj.at(key).is_null(); }

std::vector<std::int64_t> int_list(const Json& cfg, const char* key, const std::string& where) {
  const Json& v = cfg.at(key);
  if (!v.is_array()) fail_usage(cat(where, ": key '", key, "' must be a list of integers, got ", v.dump()));
  std::vector<std::int64_t> out;
  for (const Json& item : v.as_array()) out.push_back(int_value(item, key, where));
  return out;
}

// no_rope_layers (1 = RoPE) and layer_types, defaulted as Llama4TextConfig.__post_init__ does.
void read_layer_kinds(const Json& cfg, std::int64_t n, Llama4Settings& s, const std::string& where) {
  std::vector<std::int64_t> rope = present(cfg, "no_rope_layers") ? int_list(cfg, "no_rope_layers", where)
                                                                   : std::vector<std::int64_t>();
  if (rope.empty()) {  // `self.no_rope_layers if self.no_rope_layers else default`
    const std::int64_t interval = optional_int(cfg, "no_rope_layer_interval", 4, where);
    if (interval <= 0) fail_usage(cat(where, ": no_rope_layer_interval must be positive, got ", interval));
    for (std::int64_t i = 0; i < n; ++i) rope.push_back((i + 1) % interval != 0 ? 1 : 0);
  }
  if (static_cast<std::int64_t>(rope.size()) < n) {
    fail_usage(cat(where, ": no_rope_layers has ", rope.size(), " entries; num_hidden_layers is ", n));
  }
  for (std::int64_t i = 0; i < n; ++i) s.rope_layers.push_back(rope[static_cast<std::size_t>(i)] != 0);
  if (!present(cfg, "layer_types")) {
    for (std::int64_t i = 0; i < n; ++i) s.chunked_layers.push_back(s.rope_layers[static_cast<std::size_t>(i)]);
    return;
  }
  const Json& v = cfg.at("layer_types");
  if (!v.is_array() || static_cast<std::int64_t>(v.as_array().size()) != n) {
    fail_usage(cat(where, ": key 'layer_types' must be a list of ", n, " strings, got ", v.dump()));
  }
  for (const Json& item : v.as_array()) {
    const std::string t = item.is_string() ? item.as_string() : item.dump();
    if (t != "full_attention" && t != "chunked_attention") {
      fail_usage(cat(where, ": layer_types entry '", t, "' is not valid for llama4_text; valid: full_attention, "
                     "chunked_attention"));
    }
    s.chunked_layers.push_back(t == "chunked_attention");
  }
}

void read_moe_layers(const Json& cfg, std::int64_t n, Llama4Settings& s, const std::string& where) {
  if (present(cfg, "moe_layers")) {
    s.moe_layers = int_list(cfg, "moe_layers", where);
  } else {
    const std::int64_t step = optional_int(cfg, "interleave_moe_layer_step", 1, where);
    if (step <= 0) fail_usage(cat(where, ": interleave_moe_layer_step must be positive, got ", step));
    for (std::int64_t i = step - 1; i < n; i += step) s.moe_layers.push_back(i);
  }
  for (std::int64_t i : s.moe_layers) {
    if (i < 0 || i >= n) fail_usage(cat(where, ": moe_layers entry ", i, " is not a layer index in [0, ", n, ")"));
  }
}

torch::Tensor activate(const torch::Tensor& x, const std::string& act) {
  if (act == "silu") return torch::silu(x);
  if (act == "gelu") return torch::gelu(x);
  if (act == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  return torch::relu(x);
}

// apply_rotary_emb: (x[2j], x[2j+1]) as one complex number times exp(i * angle_j), in fp32.
// x: [B, L, heads, hd]; the tables hold the angles duplicated, so their first half is used.
torch::Tensor rotate_interleaved(const torch::Tensor& x, const nn::RotaryTables& rope) {
  const std::int64_t half = x.size(3) / 2;
  const torch::Tensor c = rope.cos.slice(-1, 0, half).unsqueeze(2);
  const torch::Tensor s = rope.sin.slice(-1, 0, half).unsqueeze(2);
  const torch::Tensor pairs = x.to(torch::kFloat).reshape({x.size(0), x.size(1), x.size(2), half, 2});
  const torch::Tensor re = pairs.select(-1, 0), im = pairs.select(-1, 1);
  return torch::stack({re * c - im * s, re * s + im * c}, -1).flatten(3).to(x.scalar_type());
}

// Llama4TextL2Norm: x * rsqrt(mean(x^2) + eps) over head_dim, in fp32, without a weight.
torch::Tensor l2_norm(const torch::Tensor& x, double eps) {
  const torch::Tensor f = x.to(torch::kFloat);
  return (f * torch::rsqrt(f.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type());
}

// Causal attention within documents; with `chunk` > 0 a query sees only keys whose position
// falls in its own chunk (create_chunked_causal_mask: q // chunk == k // chunk). Queries are
// processed in blocks so memory is O(L * block).
torch::Tensor chunked_document_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const Llama4Inputs& in, std::int64_t chunk) {
  constexpr std::int64_t kBlock = 512;
  const std::int64_t l = q.size(2);
  const torch::Tensor doc = in.documents.to(q.device(), torch::kLong);
  const torch::Tensor pos = in.positions.to(q.device(), torch::kLong);
  std::vector<torch::Tensor> outputs;
  for (std::int64_t q0 = 0; q0 < l; q0 += kBlock) {
    const std::int64_t q1 = std::min(l, q0 + kBlock);
    const BlockMask m = causal_document_block(doc, q0, q1);
    torch::Tensor allowed = m.allowed;  // [Lq, S]
    if (chunk > 0) {
      const torch::Tensor qc = pos.slice(1, q0, q1).div(chunk, "floor").unsqueeze(2);  // [B, Lq, 1]
      const torch::Tensor kc = pos.slice(1, 0, q1).div(chunk, "floor").unsqueeze(1);   // [B, 1, S]
      allowed = allowed.unsqueeze(0).logical_and(qc == kc).unsqueeze(1);              // [B, 1, Lq, S]
    }
    allowed = allowed.logical_or(m.ki == m.qi);  // a padding query sees itself, never nothing
    outputs.push_back(nn::dense_attention(q.slice(2, q0, q1), k.slice(2, 0, q1), v.slice(2, 0, q1), allowed));
  }
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs, 2);
}

}  // namespace

bool Llama4Settings::is_moe_layer(std::int64_t i) const {
  return std::find(moe_layers.begin(), moe_layers.end(), i) != moe_layers.end();
}

Llama4Settings read_llama4_settings(const Json& cfg, const TransformerConfig& c, const std::string& where) {
  Llama4Settings s;
  const std::int64_t n = c.num_hidden_layers;
  s.num_local_experts = optional_int(cfg, "num_local_experts", 16, where);
  s.num_experts_per_tok = optional_int(cfg, "num_experts_per_tok", 1, where);
  s.intermediate_size_mlp = optional_int(cfg, "intermediate_size_mlp", 16384, where);
  read_moe_layers(cfg, n, s, where);
  read_layer_kinds(cfg, n, s, where);
  s.attention_chunk_size = cfg.contains("attention_chunk_size")
                               ? config_fields::nullable_int(cfg, "attention_chunk_size", where)
                               : std::optional<std::int64_t>(8192);
  s.use_qk_norm = optional_bool(cfg, "use_qk_norm", true, where);
  // Used as a truth value (`if self.attn_temperature_tuning and not self.use_rope`); Llama 4 Scout's
  // config.json writes the number 4.
  const Json tuning = present(cfg, "attn_temperature_tuning") ? cfg.at("attn_temperature_tuning") : Json(true);
  if (!tuning.is_bool() && !tuning.is_number()) {
    fail_usage(cat(where, ": key 'attn_temperature_tuning' must be true, false or a number, got ", tuning.dump()));
  }
  s.attn_temperature_tuning = tuning.is_bool() ? tuning.as_bool() : tuning.as_double() != 0.0;
  s.floor_scale = optional_double(cfg, "floor_scale", 8192, where);
  s.attn_scale = optional_double(cfg, "attn_scale", 0.1, where);
  if (!s.moe_layers.empty()) {
    if (s.num_local_experts <= 0 || s.num_experts_per_tok <= 0 || s.num_experts_per_tok > s.num_local_experts) {
      fail_usage(cat(where, ": num_experts_per_tok (", s.num_experts_per_tok, ") must be in [1, num_local_experts = ",
                     s.num_local_experts, "]"));
    }
  }
  if (s.moe_layers.size() < static_cast<std::size_t>(n) && s.intermediate_size_mlp <= 0) {
    fail_usage(cat(where, ": intermediate_size_mlp must be positive, got ", s.intermediate_size_mlp));
  }
  const bool any_chunked = std::find(s.chunked_layers.begin(), s.chunked_layers.end(), true) != s.chunked_layers.end();
  if (any_chunked && (!s.attention_chunk_size || *s.attention_chunk_size <= 0)) {
    fail_usage(cat(where, ": layer_types has chunked_attention layers but attention_chunk_size is not a positive "
                   "integer"));
  }
  if (s.attn_temperature_tuning && !(s.floor_scale > 0)) {
    fail_usage(cat(where, ": floor_scale must be positive, got ", s.floor_scale));
  }
  return s;
}

Llama4ExpertsImpl::Llama4ExpertsImpl(std::int64_t experts, std::int64_t hidden, std::int64_t intermediate) {
  gate_up_proj = register_parameter("gate_up_proj", torch::zeros({experts, hidden, 2 * intermediate}));
  down_proj = register_parameter("down_proj", torch::zeros({experts, intermediate, hidden}));
}

Llama4MoeImpl::Llama4MoeImpl(const TransformerConfig& config, const Llama4Settings& settings)
    : top_k(settings.num_experts_per_tok), act(config.hidden_act) {
  experts = register_module(
      "experts", Llama4Experts(settings.num_local_experts, config.hidden_size, config.intermediate_size));
  router = register_module("router", torch::nn::Linear(torch::nn::LinearOptions(config.hidden_size,
                                                                                settings.num_local_experts)
                                                           .bias(false)));
  TransformerConfig shared = config;
  shared.mlp_bias = false;
  shared_expert = register_module("shared_expert", nn::MLP(shared));
}

torch::Tensor Llama4MoeImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const torch::Tensor flat = x.reshape({-1, shape.back()});
  const torch::Tensor logits = router(flat);  // [T, E]
  auto [top_values, top_indices] = torch::topk(logits, top_k, 1);
  // Llama4Router: sigmoid of the top-k logits; the other experts get sigmoid(-inf) = 0.
  torch::Tensor scores = torch::full_like(logits, -std::numeric_limits<float>::infinity()).scatter(1, top_indices,
                                                                                                   top_values);
  scores = torch::sigmoid(scores.to(torch::kFloat)).to(logits.scalar_type());
  // An expert's input is x * score; a zero score gives a zero output (no biases, act(0) = 0), so
  // only the tokens that chose the expert are run.
  torch::Tensor routed = torch::zeros_like(flat);
  for (std::int64_t e = 0; e < experts->gate_up_proj.size(0); ++e) {
    const torch::Tensor tokens = (top_indices == e).any(1).nonzero().select(1, 0);
    if (tokens.numel() == 0) continue;
    const torch::Tensor in = flat.index_select(0, tokens) * scores.index_select(0, tokens).select(1, e).unsqueeze(1);
    const auto gate_up = in.matmul(experts->gate_up_proj[e]).chunk(2, -1);
    const torch::Tensor y = (gate_up[1] * activate(gate_up[0], act)).matmul(experts->down_proj[e]);
    routed.index_add_(0, tokens, y);
  }
  return (shared_expert(flat) + routed).reshape(shape);
}

Llama4DecoderLayerImpl::Llama4DecoderLayerImpl(const TransformerConfig& config, const Llama4Settings& settings,
                                               std::int64_t layer_idx)
    : use_rope_(settings.rope_layers.at(static_cast<std::size_t>(layer_idx))),
      chunked_(settings.chunked_layers.at(static_cast<std::size_t>(layer_idx))),
      qk_norm_(settings.use_qk_norm && use_rope_),
      temperature_(settings.attn_temperature_tuning && !use_rope_),
      chunk_size_(settings.attention_chunk_size.value_or(0)),
      eps_(config.rms_norm_eps),
      floor_scale_(settings.floor_scale),
      attn_scale_(settings.attn_scale) {
  TransformerConfig attention = config;
  attention.model_type = "llama";  // q/k/v/o projections, all with attention_bias; no per-head norms
  self_attn = register_module("self_attn", nn::Attention(attention, config.hidden_size));
  if (settings.is_moe_layer(layer_idx)) {
    moe = register_module("feed_forward", Llama4Moe(config, settings));
  } else {
    TransformerConfig mlp = config;
    mlp.intermediate_size = settings.intermediate_size_mlp;
    mlp.mlp_bias = false;
    dense = register_module("feed_forward", nn::MLP(mlp));
  }
  input_layernorm = register_module("input_layernorm", nn::RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", nn::RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor Llama4DecoderLayerImpl::attention(const torch::Tensor& x, const Llama4Inputs& in) {
  nn::AttentionImpl& a = *self_attn;
  const std::int64_t b = x.size(0), l = x.size(1);
  torch::Tensor q = a.q_proj(x).view({b, l, a.num_heads, a.head_dim});
  torch::Tensor k = a.k_proj(x).view({b, l, a.num_kv_heads, a.head_dim});
  const torch::Tensor v = a.v_proj(x).view({b, l, a.num_kv_heads, a.head_dim}).transpose(1, 2);
  if (use_rope_) {
    q = rotate_interleaved(q, in.rope);
    k = rotate_interleaved(k, in.rope);
  }
  if (qk_norm_) {
    q = l2_norm(q, eps_);
    k = l2_norm(k, eps_);
  }
  if (temperature_) {
    // log1p(floor((position + 1) / floor_scale)) * attn_scale + 1, per query position.
    const torch::Tensor pos = in.positions.to(q.device(), torch::kFloat);
    const torch::Tensor scales = torch::log1p(torch::floor((pos + 1.0) / floor_scale_)) * attn_scale_ + 1.0;
    q = (q * scales.unsqueeze(-1).unsqueeze(-1)).to(q.scalar_type());
  }
  const torch::Tensor out = chunked_document_attention(q.transpose(1, 2), k.transpose(1, 2), v, in,
                                                       chunked_ ? chunk_size_ : 0);
  return a.output(out);
}

torch::Tensor Llama4DecoderLayerImpl::forward(const torch::Tensor& x, const Llama4Inputs& inputs) {
  const torch::Tensor h = x + attention(input_layernorm(x), inputs);
  const torch::Tensor n = post_attention_layernorm(h);
  return h + (moe ? moe->forward(n) : dense(n));
}

}  // namespace speculators
