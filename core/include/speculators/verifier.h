// The verifier: a causal LM of the llama, mistral, qwen2, qwen3, qwen3_moe, llama4_text or gpt_oss
// family (docs/compatibility.md) built from a Hugging Face config.json and loaded from
// model.safetensors or a sharded model.safetensors.index.json. It returns logits and the
// residual stream after any requested layers (vLLM's eagle_aux_hidden_state_layer_ids: id k = after
// k decoder layers,
// id n = final decoder output before the final norm).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "speculators/nn/components.h"
#include "speculators/nn/transformer_config.h"

namespace speculators {

class VerifierModelImpl : public torch::nn::Module {
 public:
  explicit VerifierModelImpl(const TransformerConfig& config);

  struct Output {
    torch::Tensor logits;                      // [B, L, V] (undefined unless requested)
    std::vector<torch::Tensor> hidden_states;  // one [B, L, H] per requested layer id, in order
  };
  // input_ids, position_ids: [B, L] int64. document_ids: [L] int64 (causal attention within each
  // document; -1 = padding) or undefined for one causal sequence per row.
  Output forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                 const torch::Tensor& document_ids, const std::vector<std::int64_t>& layer_ids,
                 bool want_logits = true);

  const TransformerConfig& config() const { return config_; }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};

 private:
  TransformerConfig config_;
  nn::RotaryEmbedding rotary_;
};
TORCH_MODULE(VerifierModel);

// Loads DIR/config.json and its weights (names with or without the "model." prefix; a missing
// lm_head.weight means tied embeddings). Throws Error naming the file and tensor at fault.
VerifierModel load_verifier(const std::string& dir);
// Writes DIR/config.json and DIR/model.safetensors in Hugging Face layout (fp32 unless `dtype`).
void save_verifier(VerifierModelImpl& model, const std::string& dir,
                   torch::ScalarType dtype = torch::kFloat32);

// Reads one tensor of a verifier checkpoint by the reference's resolution rules
// (speculators/utils/loading.py: _resolve_key):
// exact name, then suffix match, then aliases. Returns an undefined tensor if nothing matches.
// `logical` is one of "embed_tokens.weight", "lm_head.weight", "model.norm.weight".
torch::Tensor read_verifier_tensor(const std::string& dir, const std::string& logical);

// The parsed config.json of a verifier directory (text_config for multimodal models).
Json read_verifier_config_json(const std::string& dir);

}  // namespace speculators
