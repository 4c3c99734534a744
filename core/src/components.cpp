// Base components for the supported decoder families (transformers' modeling_<family>.py
// semantics): RMSNorm, rotary application (the frequencies are in rope.cpp), the attention kernels
// (dense reference and chunked document-causal), the attention / MLP / decoder-layer modules with
// Hugging Face parameter names, the architecture map and weight initialisation.
#include "speculators/nn/components.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fused_inference.h"
#include "fused_rms_norm.h"
#include "fused_rotary.h"
#include "fused_silu_gate.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/nn/document_blocks.h"

namespace speculators {
namespace nn {

// ---------------------------------------------------------------------------------------------
// RMSNorm

RMSNormImpl::RMSNormImpl(std::int64_t dim, double eps_value) : eps(eps_value) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if (fused::rms_norm_fusable(x, weight)) return fused::rms_norm(x, weight, eps);
  // As LlamaRMSNorm: fp32 statistics, cast back to the input dtype, then scale.
  const auto input_dtype = x.scalar_type();
  const torch::Tensor xf = x.to(torch::kFloat);
  const torch::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * torch::rsqrt(variance + eps)).to(input_dtype);
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding

namespace {
torch::Tensor rotate_half(const torch::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& tables) {
  if (fused::rotary_fusable(x, tables.cos, tables.sin)) return fused::rotary(x, tables.cos, tables.sin);
  const torch::Tensor cos = tables.cos.unsqueeze(1);  // [B, 1, L, hd]
  const torch::Tensor sin = tables.sin.unsqueeze(1);
  return x * cos + rotate_half(x) * sin;
}

// ---------------------------------------------------------------------------------------------
// Attention kernels

namespace {

// Query rows per chunk of document_causal_attention when no gradient is needed.
constexpr std::int64_t kInferenceChunk = 128;

void check_qkv(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const char* who) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) fail(cat(who, ": q, k, v must be [B, heads, L, hd]"));
  if (q.size(1) % k.size(1) != 0) {
    fail(cat(who, ": query heads (", q.size(1), ") must be a multiple of key/value heads (", k.size(1), ")"));
  }
  if (k.sizes() != v.sizes()) fail(cat(who, ": k and v shapes differ"));
}

// Softmax attention of q [B, nh, Lq, hd] over k/v [B, nkv, S, hd]; `hidden` [Lq, S] is true where a
// query may not see a key.
// GQA without copying K/V: query heads sharing a KV head are folded into the row dimension
// (HF repeat_kv maps query head h to KV head h / (nh / nkv)).
torch::Tensor grouped_softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const torch::Tensor& hidden) {
  const std::int64_t b = q.size(0), nh = q.size(1), lq = q.size(2), hd = q.size(3);
  const std::int64_t nkv = k.size(1), s = k.size(2), rep = nh / nkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const torch::Tensor qg = q.reshape({b, nkv, rep * lq, hd});
  torch::Tensor scores = torch::matmul(qg, k.transpose(2, 3)) * scale;  // [B, nkv, rep*Lq, S]
  scores = scores.view({b, nkv, rep, lq, s}).masked_fill(hidden, -std::numeric_limits<float>::infinity());
  const torch::Tensor probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
  return torch::matmul(probs.view({b, nkv, rep * lq, s}), v).view({b, nh, lq, hd});
}

// The same attention when no gradient is needed, in fp32: the scale goes on q, and the mask, the
// exponent and the normalisation (on the output rows, after the product) are in place, so the
// scores are written once. `blocked` [Lq, n] (true: hidden) covers the last n ≤ S keys, the keys
// before them being visible to every query; undefined, the last Lq keys are causal to the queries
// (the chunk's own triangle). On the CPU the mask, max, exponent and sum are one row kernel.
torch::Tensor grouped_softmax_attention_inference(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const torch::Tensor& blocked) {
  const std::int64_t b = q.size(0), nh = q.size(1), lq = q.size(2), hd = q.size(3);
  const std::int64_t nkv = k.size(1), s = k.size(2), rep = nh / nkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const torch::Tensor qg = (q * scale).reshape({b, nkv, rep * lq, hd});
  const torch::Tensor scores = torch::matmul(qg, k.transpose(2, 3));  // [B, nkv, rep*Lq, S]
  const torch::Tensor p = scores.view({b, nkv, rep, lq, s});
  const auto hide = [&](const torch::Tensor& mask) {
    p.narrow(-1, s - mask.size(1), mask.size(1)).masked_fill_(mask, -std::numeric_limits<float>::infinity());
  };
  torch::Tensor sum;
  if (fused::inference_fusable(scores)) {
    if (blocked.defined()) hide(blocked);
    sum = fused::exp_rows_(scores.view({-1, s}), blocked.defined() ? 0 : lq).view({b, nkv, rep, lq, 1});
  } else {
    hide(blocked.defined() ? blocked
                           : torch::ones({lq, lq}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(1));
    p.sub_(p.amax(-1, /*keepdim=*/true)).exp_();  // the max is finite: the own key is visible
    sum = p.sum(-1, /*keepdim=*/true);
  }
  return torch::matmul(scores, v).view({b, nkv, rep, lq, hd}).div_(sum).view({b, nh, lq, hd});
}

bool needs_grad(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
}

}  // namespace

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& allowed) {
  check_qkv(q, k, v, "dense_attention");
  const std::int64_t nh = q.size(1), hd = q.size(3), nkv = k.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const torch::Tensor kr = k.repeat_interleave(nh / nkv, 1);
  const torch::Tensor vr = v.repeat_interleave(nh / nkv, 1);
  torch::Tensor scores = torch::matmul(q, kr.transpose(2, 3)) * scale;
  scores = scores.masked_fill(allowed.to(torch::kBool).logical_not(), -std::numeric_limits<float>::infinity());
  const torch::Tensor probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
  return torch::matmul(probs, vr);
}

torch::Tensor document_causal_mask(const torch::Tensor& document_ids, std::optional<std::int64_t> window) {
  if (document_ids.dim() != 1) fail("document_causal_mask: document_ids must be [L]");
  const std::int64_t l = document_ids.size(0);
  return hidden_keys(document_ids_on_cpu(document_ids), 0, l, 0, l, window, document_ids.device()).logical_not();
}

torch::Tensor document_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const torch::Tensor& document_ids, std::optional<std::int64_t> window,
                                        std::int64_t chunk) {
  check_qkv(q, k, v, "document_causal_attention");
  const std::int64_t l = q.size(2);
  if (k.size(2) != l) fail(cat("document_causal_attention: ", l, " queries but ", k.size(2), " keys"));
  if (document_ids.dim() != 1 || document_ids.size(0) != l) {
    fail(cat("document_causal_attention: document_ids must be [", l, "], got ", document_ids.sizes()));
  }
  if (chunk <= 0) fail(cat("document_causal_attention: chunk must be positive, got ", chunk));
  if (window && *window <= 0) fail(cat("document_causal_attention: window must be positive, got ", *window));

  // Without autograd, smaller chunks skip more of the causal triangle and nothing is kept for a
  // backward, so the loop costs only its extra operator calls.
  const bool inference = !needs_grad(q, k, v) && q.scalar_type() == torch::kFloat &&
                         k.scalar_type() == torch::kFloat && v.scalar_type() == torch::kFloat;
  if (inference) chunk = std::min<std::int64_t>(chunk, kInferenceChunk);
  const torch::Tensor ids = document_ids_on_cpu(document_ids);
  const std::int64_t* doc = ids.data_ptr<std::int64_t>();
  // Contiguous once, so that each chunk's keys fold into a batched product without a copy.
  const torch::Tensor keys = inference ? k.contiguous() : k, values = inference ? v.contiguous() : v;
  std::vector<torch::Tensor> outputs;
  for (const QueryBlock& c : query_blocks(ids, window, chunk)) {
    const torch::Tensor qc = q.slice(2, c.q0, c.q1), kc = keys.slice(2, c.k0, c.q1), vc = values.slice(2, c.k0, c.q1);
    const auto hidden = [&] { return hidden_keys(ids, c.q0, c.q1, c.k0, c.q1, window, q.device()); };
    if (!inference) {
      outputs.push_back(grouped_softmax_attention(qc, kc, vc, hidden()));
      continue;
    }
    // Keys k0..q1 of one document, none cut by the window: only the chunk's own causal triangle
    // is hidden.
    const std::int64_t d = doc[c.q0];
    const bool one_document = d != -1 && (!window || c.q1 - c.k0 <= *window) &&
                              std::all_of(doc + c.k0, doc + c.q1, [d](std::int64_t x) { return x == d; });
    outputs.push_back(grouped_softmax_attention_inference(qc, kc, vc, one_document ? torch::Tensor() : hidden()));
  }
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs, 2);
}

// ---------------------------------------------------------------------------------------------
// Modules

AttentionImpl::AttentionImpl(const TransformerConfig& config, std::int64_t input_size)
    : num_heads(config.num_attention_heads), num_kv_heads(config.num_key_value_heads), head_dim(config.head_dim) {
  const std::int64_t in = input_size > 0 ? input_size : config.hidden_size;
  const bool qwen2 = config.model_type == "qwen2";
  const bool bias = config.attention_bias && config.model_type != "mistral";
  const bool qkv_bias = bias || qwen2;
  const bool o_bias = bias && !qwen2;
  q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(in, num_heads * head_dim).bias(qkv_bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(in, num_kv_heads * head_dim).bias(qkv_bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(in, num_kv_heads * head_dim).bias(qkv_bias)));
  o_proj = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(num_heads * head_dim, config.hidden_size).bias(o_bias)));
  if (config.model_type == "qwen3" || config.model_type == "qwen3_moe") {
    q_norm = register_module("q_norm", RMSNorm(head_dim, config.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim, config.rms_norm_eps));
  }
}

AttentionImpl::QKV AttentionImpl::project(const torch::Tensor& x, const RotaryTables& rope) {
  const std::int64_t b = x.size(0), l = x.size(1);
  torch::Tensor q = q_proj(x).view({b, l, num_heads, head_dim});
  torch::Tensor k = k_proj(x).view({b, l, num_kv_heads, head_dim});
  torch::Tensor v = v_proj(x).view({b, l, num_kv_heads, head_dim});
  // Qwen3: per-head RMSNorm over hd before RoPE (transformers: Qwen3Attention).
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  q = apply_rotary(q.transpose(1, 2), rope);
  k = apply_rotary(k.transpose(1, 2), rope);
  return QKV{q, k, v.transpose(1, 2)};
}

torch::Tensor AttentionImpl::output(const torch::Tensor& attn) {
  const std::int64_t b = attn.size(0), l = attn.size(2);
  return o_proj(attn.transpose(1, 2).reshape({b, l, num_heads * head_dim}));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const RotaryTables& rope, const AttentionKernel& kernel) {
  const QKV p = project(x, rope);
  return output(kernel(p.q, p.k, p.v));
}

MLPImpl::MLPImpl(const TransformerConfig& config) : act(config.hidden_act) {
  const std::int64_t h = config.hidden_size, i = config.intermediate_size;
  gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(h, i).bias(config.mlp_bias)));
  up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(h, i).bias(config.mlp_bias)));
  down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(i, h).bias(config.mlp_bias)));
  if (act != "silu" && act != "gelu" && act != "gelu_pytorch_tanh" && act != "relu") {
    fail_usage(cat("hidden_act '", act, "' is not supported; valid: silu, gelu, gelu_pytorch_tanh, relu"));
  }
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  torch::Tensor g = gate_proj(x);
  if (act == "silu") {
    const torch::Tensor u = up_proj(x);
    if (!fused::silu_gate_fusable(g, u)) return down_proj(torch::silu(g) * u);
    // Without a gradient, written over the fresh gate projection.
    const bool grad = torch::GradMode::is_enabled() && (g.requires_grad() || u.requires_grad());
    return down_proj(grad || !g.is_contiguous() ? fused::silu_gate(g, u) : fused::silu_gate_(g, u));
  }
  if (act == "gelu") {
    g = torch::gelu(g);
  } else if (act == "gelu_pytorch_tanh") {
    g = torch::gelu(g, "tanh");
  } else {
    g = torch::relu(g);
  }
  return down_proj(g * up_proj(x));
}

SparseMoeImpl::SparseMoeImpl(const TransformerConfig& config)
    : top_k(config.num_experts_per_tok), norm_topk_prob(config.norm_topk_prob) {
  gate = register_module(
      "gate", torch::nn::Linear(torch::nn::LinearOptions(config.hidden_size, config.num_experts).bias(false)));
  TransformerConfig expert = config;
  expert.intermediate_size = config.moe_intermediate_size;
  expert.mlp_bias = false;
  experts = register_module("experts", torch::nn::ModuleList());
  for (std::int64_t e = 0; e < config.num_experts; ++e) experts->push_back(MLP(expert));
}

torch::Tensor SparseMoeImpl::forward(const torch::Tensor& x) {
  const auto shape = x.sizes().vec();
  const torch::Tensor flat = x.reshape({-1, shape.back()});
  const torch::Tensor logits = gate(flat);
  const torch::Tensor probs = torch::softmax(logits, -1, torch::kFloat);
  auto [weights, chosen] = torch::topk(probs, top_k, -1);
  if (norm_topk_prob) weights = weights / weights.sum(-1, /*keepdim=*/true);
  weights = weights.to(logits.scalar_type());
  torch::Tensor out = torch::zeros_like(flat);
  for (std::int64_t e = 0; e < static_cast<std::int64_t>(experts->size()); ++e) {
    const torch::Tensor hit = (chosen == e).nonzero();  // [n, 2]: token, slot
    if (hit.size(0) == 0) continue;
    const torch::Tensor tokens = hit.select(1, 0);
    const torch::Tensor slot_weights = weights.index({tokens, hit.select(1, 1)}).unsqueeze(-1);
    const torch::Tensor y = experts->ptr<MLPImpl>(static_cast<std::size_t>(e))->forward(flat.index_select(0, tokens));
    out.index_add_(0, tokens, (y * slot_weights).to(out.scalar_type()));
  }
  return out.reshape(shape);
}

DecoderLayerImpl::DecoderLayerImpl(const TransformerConfig& config, std::int64_t idx, std::int64_t attn_input_size)
    : layer_idx(idx) {
  self_attn = register_module("self_attn", Attention(config, attn_input_size > 0 ? attn_input_size : config.hidden_size));
  if (config.is_sparse_layer(idx)) {
    moe = register_module("mlp", SparseMoe(config));
  } else {
    mlp = register_module("mlp", MLP(config));
  }
  input_layernorm = register_module("input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const RotaryTables& rope, const AttentionKernel& kernel) {
  // Pre-norm residual block (transformers: LlamaDecoderLayer).
  torch::Tensor h = x + self_attn->forward(input_layernorm(x), rope, kernel);
  return h + (moe ? moe->forward(post_attention_layernorm(h)) : mlp(post_attention_layernorm(h)));
}

// ---------------------------------------------------------------------------------------------
// Architecture map

ModelClasses model_classes(const std::string& arch) {
  if (arch != "llama" && arch != "qwen3" && arch != "qwen2" && arch != "mistral" && arch != "qwen3_moe") {
    fail_usage(cat("unknown decoder architecture '", arch, "'; valid: llama, mistral, qwen2, qwen3, qwen3_moe"));
  }
  ModelClasses classes;
  classes.arch = arch;
  // The architecture decides the layer kind (qwen3 adds q_norm/k_norm, qwen2 q/k/v biases),
  // whatever model_type the config carries.
  classes.decoder_layer = [arch](const TransformerConfig& config, std::int64_t layer_idx) {
    TransformerConfig c = config;
    c.model_type = arch;
    return std::make_shared<DecoderLayerImpl>(c, layer_idx);
  };
  return classes;
}

ModelClasses override_components(ModelClasses base, ComponentOverrides overrides) {
  if (!overrides.decoder_layer) return base;
  if (!overrides.layer_index) {
    base.decoder_layer = overrides.decoder_layer;
    return base;
  }
  const std::int64_t index = *overrides.layer_index;
  auto previous = base.layer_override;
  auto factory = overrides.decoder_layer;
  base.layer_override = [index, previous, factory](const TransformerConfig& config,
                                                   std::int64_t layer_idx) -> std::shared_ptr<DecoderLayerImpl> {
    if (layer_idx == index) return factory(config, layer_idx);
    return previous ? previous(config, layer_idx) : nullptr;
  };
  return base;
}

std::shared_ptr<DecoderLayerImpl> make_layer(const ModelClasses& classes, const TransformerConfig& config,
                                             std::int64_t layer_idx) {
  if (classes.layer_override) {
    if (auto layer = classes.layer_override(config, layer_idx)) return layer;
  }
  if (!classes.decoder_layer) fail(cat("make_layer: architecture '", classes.arch, "' has no decoder layer factory"));
  auto layer = classes.decoder_layer(config, layer_idx);
  if (!layer) fail(cat("make_layer: the decoder layer factory of '", classes.arch, "' returned nothing for layer ", layer_idx));
  return layer;
}

void init_weights(torch::nn::Module& module, double initializer_range) {
  // HF post_init: Linear/Embedding ~ N(0, initializer_range), biases 0, norms 1.
  torch::NoGradGuard no_grad;
  auto init_one = [initializer_range](torch::nn::Module& m) {
    if (auto* linear = m.as<torch::nn::LinearImpl>()) {
      linear->weight.normal_(0.0, initializer_range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = m.as<torch::nn::EmbeddingImpl>()) {
      embedding->weight.normal_(0.0, initializer_range);
    } else if (auto* norm = m.as<RMSNormImpl>()) {
      norm->weight.fill_(1.0);
    }
  };
  init_one(module);
  for (const auto& child : module.modules(/*include_self=*/false)) init_one(*child);
}

}  // namespace nn
}  // namespace speculators
