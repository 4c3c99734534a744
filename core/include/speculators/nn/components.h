// Base components for Llama, Qwen2, Qwen3, Mistral and Qwen3-MoE decoders (transformers'
// modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py, modeling_mistral.py and
// modeling_qwen3_moe.py semantics), reusable by every algorithm: RMSNorm, rotary embedding (every
// Hugging Face rope type), GQA attention, MLP, the routed-experts block, decoder layer,
// and the `model_classes` map with `override_components` to swap one piece (EAGLE-3 swaps its
// first layer). The attention *kernel* (which keys a query may see) is a parameter, so an
// algorithm with its own mask rule reuses the projections and norms unchanged.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "speculators/nn/transformer_config.h"

namespace speculators {
namespace nn {

// y = weight * (x * rsqrt(mean(x^2) + eps)), in fp32 and cast back (transformers' LlamaRMSNorm).
// fp32 on the CPU runs as one fused autograd node; other inputs run the operator expression.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// cos/sin tables for a set of positions: shape [..., L, head_dim] (the angle vector duplicated).
struct RotaryTables {
  torch::Tensor cos;
  torch::Tensor sin;
};

// inv_freq [head_dim/2] (fp32) and the factor cos/sin are multiplied by (yarn, longrope).
struct RopeFrequencies {
  torch::Tensor inv_freq;
  double attention_scaling = 1.0;
};
// For a forward whose longest sequence is `seq_len` (dynamic and longrope depend on it; nullopt
// = the frequencies a freshly built Hugging Face model starts with).
RopeFrequencies rope_frequencies(const TransformerConfig& config, std::optional<std::int64_t> seq_len);
// inv_freq from theta and the rope scaling, for no particular length; not a parameter, never saved.
torch::Tensor rotary_inv_freq(const TransformerConfig& config);

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const TransformerConfig& config);
  // position_ids: [B, L] int64 -> tables [B, L, head_dim] in `dtype`.
  RotaryTables tables(const torch::Tensor& position_ids, torch::ScalarType dtype) const;
  const torch::Tensor& inv_freq() const { return inv_freq_; }

 private:
  TransformerConfig config_;
  torch::Tensor inv_freq_;
  double attention_scaling_ = 1.0;
  bool depends_on_length_ = false;
};

// x: [B, heads, L, hd]; cos/sin: [B, L, hd]. rot(x) = x*cos + rotate_half(x)*sin.
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& tables);

// An attention kernel: q [B, nh, L, hd], k/v [B, nkv, S, hd] (GQA: nh % nkv == 0) -> [B, nh, L, hd].
// Scale hd^-0.5, softmax in fp32.
using AttentionKernel =
    std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v)>;

// Dense reference kernel: `allowed` is a bool mask [L, S] (or broadcastable to [B, 1, L, S]).
torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& allowed);
// Causal attention within documents (document_ids [L], -1 = padding, which sees only itself),
// optionally with a sliding window (key j visible iff q - W < j <= q). Processes queries in
// chunks so memory is O(L * chunk) rather than O(L^2).
torch::Tensor document_causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, const torch::Tensor& document_ids,
                                        std::optional<std::int64_t> window, std::int64_t chunk = 512);
// The bool mask [L, L] of the rule above (for tests and small inputs).
torch::Tensor document_causal_mask(const torch::Tensor& document_ids, std::optional<std::int64_t> window);

// Projections q/k/v/o with optional Qwen3 per-head q_norm/k_norm. Biases by family: Qwen2 has
// q/k/v biases only, Mistral none, the others follow attention_bias. `input_size` is the width of
// the input to q/k/v (H normally, 2H for the EAGLE-3 first layer).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const TransformerConfig& config, std::int64_t input_size);
  struct QKV {
    torch::Tensor q;  // [B, nh, L, hd], rotary applied
    torch::Tensor k;  // [B, nkv, L, hd], rotary applied
    torch::Tensor v;  // [B, nkv, L, hd]
  };
  QKV project(const torch::Tensor& x, const RotaryTables& rope);
  // attn: [B, nh, L, hd] -> [B, L, H]
  torch::Tensor output(const torch::Tensor& attn);
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rope, const AttentionKernel& kernel);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 and qwen3_moe only
  std::int64_t num_heads, num_kv_heads, head_dim;
};
TORCH_MODULE(Attention);

// down(act(gate(x)) * up(x)); act: silu (also gelu, gelu_pytorch_tanh, relu).
class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  std::string act;
};
TORCH_MODULE(MLP);

// Qwen3-MoE routed experts (modeling_qwen3_moe.py: Qwen3MoeSparseMoeBlock): router logits
// x @ gate^T, softmax in fp32, top-k, optional renormalisation of the k weights, then the sum of
// the chosen experts' MLPs (silu gate) weighted by them. Parameter names as in the checkpoint:
// gate.weight [E, H], experts.<e>.{gate,up,down}_proj.weight.
class SparseMoeImpl : public torch::nn::Module {
 public:
  explicit SparseMoeImpl(const TransformerConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate{nullptr};  // the router
  torch::nn::ModuleList experts{nullptr};
  std::int64_t top_k;
  bool norm_topk_prob;
};
TORCH_MODULE(SparseMoe);

// Pre-norm decoder layer: x += attn(input_layernorm(x)); x += mlp(post_attention_layernorm(x)).
// The `mlp` is a SparseMoe on the layers TransformerConfig::is_sparse_layer names.
// Subclasses override forward (EAGLE-3's first layer).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const TransformerConfig& config, std::int64_t layer_idx, std::int64_t attn_input_size = 0);
  virtual ~DecoderLayerImpl() = default;
  virtual torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rope, const AttentionKernel& kernel);

  RMSNorm input_layernorm{nullptr};
  Attention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  MLP mlp{nullptr};
  SparseMoe moe{nullptr};  // registered as "mlp" instead of `mlp` on sparse layers
  std::int64_t layer_idx;
};

using DecoderLayerFactory =
    std::function<std::shared_ptr<DecoderLayerImpl>(const TransformerConfig& config, std::int64_t layer_idx)>;

// The pieces an architecture is made of; `model_classes("llama")`, `("qwen3")`, ...
struct ModelClasses {
  std::string arch;
  DecoderLayerFactory decoder_layer;
  // Layer-specific override: when set and it returns non-null for a layer index, it wins.
  std::function<std::shared_ptr<DecoderLayerImpl>(const TransformerConfig&, std::int64_t)> layer_override;
};

// Throws Error listing the known architectures for anything but llama, mistral, qwen2, qwen3,
// qwen3_moe.
ModelClasses model_classes(const std::string& arch);

struct ComponentOverrides {
  // Replaces the decoder layer at index `first_layer_index`; the others stay.
  std::optional<std::int64_t> layer_index;
  DecoderLayerFactory decoder_layer;
};
ModelClasses override_components(ModelClasses base, ComponentOverrides overrides);

// Builds layer `i` with `classes` (override first, then the default factory).
std::shared_ptr<DecoderLayerImpl> make_layer(const ModelClasses& classes, const TransformerConfig& config,
                                             std::int64_t layer_idx);

// HF post_init: Linear ~ N(0, initializer_range), biases 0, norms 1.
void init_weights(torch::nn::Module& module, double initializer_range);

}  // namespace nn
}  // namespace speculators
