// An MLP speculator in the style of IBM's (Wertheimer et al., "Accelerating Production LLMs with
// Combined Token/Embedding Speculators", 2024; vLLM serves the same architecture as
// MLPSpeculator). No attention: the draft's state starts as the verifier's final hidden state at
// the last accepted position and goes through n_predict small stages; stage k mixes the state with
// the embedding of the token it was given and predicts the token after it:
//
//   z_0 = verifier_norm(h_i)                                  h_i: the verifier's last layer at i
//   z_k = gelu(LayerNorm_k(proj_k(z_{k-1}) · a + emb_k(x_{i+k}) · b))     k = 1..n_predict
//   logits_k = head_k(z_k)                                    a prediction of token x_{i+k+1}
//
// with a = 0.5^(0.5 / n_predict) and b = sqrt((1 - a²) · inner_dim / 2), IBM's weights that keep
// the state's scale over the stages. In training x_{i+k} is the row's own token (teacher forcing)
// and stage k is scored against the verifier's distribution at position i + k (the verifier's
// prediction of x_{i+k+1}), forward KL, where positions i .. i+k+1 lie in one document and the
// predicted token is in the loss mask. At inference x_{i+1} is the verifier's next token and
// x_{i+k}, k > 1, the stage k-1 proposal.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/nn/components.h"
#include "speculators/proposal.h"

namespace speculators {
namespace mlp_speculator {

// Everything that fixes the draft's shapes; config.json holds all of it.
struct MlpConfig {
  std::int64_t hidden_size = 0;  // H, the verifier's width
  std::int64_t inner_dim = 0;    // the stages' width
  std::int64_t vocab_size = 0;   // the verifier's vocabulary (the draft predicts over all of it)
  std::int64_t n_predict = 3;    // stages = tokens proposed per step
  std::int64_t state_layer = 0;  // the verifier layer read as the state: its last one
  double rms_norm_eps = 1e-6;    // the verifier's final norm
  std::vector<std::string> verifier_architectures;
  std::string verifier_name_or_path;

  void validate(const std::string& origin) const;
  Json to_json() const;
  static MlpConfig from_json(const Json& json, const std::string& origin);
};

// One stage: next state and its logits.
class MlpStageImpl : public torch::nn::Module {
 public:
  MlpStageImpl(std::int64_t in_dim, std::int64_t inner_dim, std::int64_t vocab_size, double state_weight,
               double emb_weight);
  // state [N, in_dim], tokens [N] int64 -> the next state [N, inner_dim].
  torch::Tensor forward(const torch::Tensor& state, const torch::Tensor& tokens);

  torch::nn::Linear proj{nullptr};
  torch::nn::Embedding emb{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr};
  double state_weight;
  double emb_weight;
};
TORCH_MODULE(MlpStage);

class MlpSpeculator : public DraftModel {
 public:
  explicit MlpSpeculator(MlpConfig config);

  // Copies the verifier's final norm and lm_head (frozen) from a verifier checkpoint directory.
  void load_verifier(const std::string& dir);

  torch::nn::ModuleList layers() override { return stages_; }
  // The host requires both to exist; here they are the first stage's (trained) embedding and head.
  std::shared_ptr<torch::nn::Module> embed_tokens() override { return stage(0)->emb.ptr(); }
  std::shared_ptr<torch::nn::Module> lm_head() override { return stage(0)->head.ptr(); }
  std::vector<std::int64_t> target_layer_ids() const override { return {config_.state_layer}; }
  ForwardResult forward(const Batch& batch, const Json& call_args) override;
  Json config_json() const override { return config_.to_json(); }
  std::vector<std::string> keys_to_ignore_on_save() const override { return frozen_keys(); }
  std::vector<std::string> keys_allowed_missing_on_load() const override { return frozen_keys(); }
  void after_load(const BuildContext& ctx) override;
  // The stages' embeddings and heads are not hidden weight matrices: AdamW, as the reference's
  // rule would give tensors named embed_tokens / lm_head; the projections get Muon.
  OptimizerGroup optimizer_group(const std::string& name, const torch::Tensor& param) const override;
  std::unique_ptr<Proposer> make_proposer() override;

  // z_0 = verifier_norm(features) for features [N, H].
  torch::Tensor initial_state(const torch::Tensor& features);
  // Each stage's logits [L, V] at every position of one row: features [L, H], input_ids [L]
  // (stage k reads input_ids[i + k]; 0 past the end of the row).
  std::vector<torch::Tensor> stage_logits(const torch::Tensor& features, const torch::Tensor& input_ids);
  // The verifier's logits [L, V] from its last hidden states [L, H] (no gradient).
  torch::Tensor verifier_logits(const torch::Tensor& last_hidden);

  MlpStageImpl* stage(std::int64_t k) { return stages_[static_cast<std::size_t>(k)]->as<MlpStageImpl>(); }
  const MlpConfig& config() const { return config_; }

 private:
  static std::vector<std::string> frozen_keys() { return {"verifier_norm.weight", "verifier_head.weight"}; }
  MlpConfig config_;
  torch::nn::ModuleList stages_{nullptr};
  nn::RMSNorm verifier_norm_{nullptr};
  torch::nn::Linear verifier_head_{nullptr};
};

// Proposals from the last accepted position: the verifier's state there and its next token.
class MlpProposer : public Proposer {
 public:
  explicit MlpProposer(MlpSpeculator& model) : model_(model) {}
  void extend(const torch::Tensor& features, const torch::Tensor& last_hidden,
              const torch::Tensor& next_tokens) override;
  // At most n_predict tokens.
  std::vector<std::int64_t> propose(std::int64_t k) override;
  std::int64_t length() const override { return length_; }

 private:
  MlpSpeculator& model_;
  torch::Tensor feature_;  // [H] at the last accepted position
  std::int64_t token_ = 0;  // the token after it
  std::int64_t length_ = 0;
};

class MlpAlgorithm : public Algorithm {
 public:
  std::string name() const override { return "mlp_speculator"; }
  std::string description() const override;
  Schema schema() const override;
  std::vector<std::int64_t> target_layer_ids(const BuildContext& ctx) const override;
  std::shared_ptr<DraftModel> from_training_args(const BuildContext& ctx) const override;
  std::shared_ptr<DraftModel> from_config(const Json& config_json, const BuildContext& ctx) const override;
};

}  // namespace mlp_speculator
}  // namespace speculators
