// The myalgo draft model: what a checkpoint of it contains and how it computes.
//
//   hidden_states [1, L, A·H]  (the verifier's residual stream after each aux layer, concatenated)
//     -> fc: Linear(A·H -> H)
//     -> num_layers decoder layers from the SDK's base components (causal within each document)
//     -> norm (RMSNorm)                                   = x, the draft's state at each position
//     -> head_j(x) = x + silu(W_j x + b_j), j = 1..block_size (Medusa's residual block; W_j starts
//        at zero so every head starts as the identity)
//     -> lm_head (the verifier's, frozen)                 = logits of head j over the draft vocab
//
// Head j at position i predicts token i+j; loss.h spells out the targets and the masking.
//
// Frozen parts copied from the verifier (requires_grad = false): lm_head (rows of the draft
// vocabulary when a vocab mapping is used), verifier_norm (the verifier's final
// norm, to turn verifier_last_hidden_states into target logits) and embed_tokens (unused by
// the computation; the host requires every draft to expose one). Of the three only
// lm_head is saved: the other two are re-read from the verifier whenever a model is built.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/nn/components.h"

namespace speculators {
namespace myalgo {

// γ of the loss: head j's term is weighted by γ^(j-1). 0.8 is Medusa-2's decay for its heads.
constexpr double kDefaultHeadLossDecay = 0.8;

// Everything that fixes the draft's shapes; config.json stores all of it.
struct MyAlgoConfig {
  TransformerConfig layer_config;             // the draft decoder: hidden size, heads, layers, rope
  std::int64_t block_size = 8;                // number of heads = tokens proposed per step
  std::vector<std::int64_t> aux_layer_ids;    // verifier layers feeding fc, in concatenation order
  std::int64_t draft_vocab_size = 0;          // Vd; equals layer_config.vocab_size without a mapping
  std::vector<std::string> verifier_architectures;
  std::string verifier_name_or_path;

  // The speculators-format config.json object (speculators_model_type "myalgo").
  Json to_json() const;
  // The reverse; `origin` (a file name) is named in errors.
  static MyAlgoConfig from_json(const Json& json, const std::string& origin);
  // Throws Error naming the field when shapes cannot work.
  void validate(const std::string& origin) const;
};

// head(x) = x + silu(linear(x)): the residual block of Medusa heads.
class ResidualHeadImpl : public torch::nn::Module {
 public:
  explicit ResidualHeadImpl(std::int64_t hidden_size);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(ResidualHead);

class MyAlgoModel : public DraftModel {
 public:
  explicit MyAlgoModel(MyAlgoConfig config);

  // Installs the draft-vocabulary mapping; checks its shapes against the config.
  // An empty mapping is accepted only for the full vocabulary.
  void set_vocab_mapping(const VocabMapping& vocab);
  // Copies lm_head (rows via t2d), the final norm and the embedding from a verifier checkpoint
  // directory and freezes them. Throws Error naming the directory and tensor on a mismatch.
  void load_verifier_weights(const std::string& verifier_dir);

  // --- the DraftModel contract (algorithm.h); what the host does with each is noted there ---
  torch::nn::ModuleList layers() override { return layers_; }
  std::shared_ptr<torch::nn::Module> embed_tokens() override { return embed_tokens_.ptr(); }
  std::shared_ptr<torch::nn::Module> lm_head() override { return lm_head_.ptr(); }
  std::vector<std::int64_t> target_layer_ids() const override { return config_.aux_layer_ids; }
  ForwardResult forward(const Batch& batch, const Json& call_args) override;
  Json config_json() const override { return config_.to_json(); }
  std::vector<std::string> keys_to_ignore_on_save() const override;
  std::vector<std::string> keys_allowed_missing_on_load() const override;
  std::unique_ptr<Proposer> make_proposer() override;
  void after_load(const BuildContext& ctx) override;

  // --- the pieces of forward, public so that tests (and subclasses) can reach them ---
  // The draft state after the final norm: [1, L, H].
  torch::Tensor draft_states(const Batch& batch);
  // Head j's logits for states x [1, L, H]: block_size tensors [1, L, Vd].
  std::vector<torch::Tensor> head_logits(const torch::Tensor& x);
  // The verifier's logits over the draft vocabulary from verifier_last_hidden_states: [1, L, Vd].
  torch::Tensor verifier_logits(const torch::Tensor& last_hidden);

  const MyAlgoConfig& config() const { return config_; }
  torch::nn::Linear fc() const { return fc_; }
  torch::nn::ModuleList heads() const { return heads_; }
  nn::RMSNorm verifier_norm() const { return verifier_norm_; }

 private:
  friend class MyAlgoProposer;
  MyAlgoConfig config_;
  nn::RotaryEmbedding rotary_;
  torch::nn::Linear fc_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  nn::RMSNorm norm_{nullptr};
  torch::nn::ModuleList heads_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  nn::RMSNorm verifier_norm_{nullptr};
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::Tensor d2t_;  // registered only with a reduced vocabulary (saved, as vLLM expects)
  torch::Tensor t2d_;
};

}  // namespace myalgo
}  // namespace speculators
