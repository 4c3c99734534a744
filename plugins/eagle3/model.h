// The EAGLE-3 draft model (speculators/models/eagle3/core.py: Eagle3DraftModel): input norm(s) and
// fc over the verifier's aux hidden states, a first decoder layer reading cat(norm(embed),
// norm(hidden)) (2H), further standard layers, the final norm, and the frozen verifier head
// restricted to the draft vocab. Training runs K TTT steps with teacher forcing and the attention
// of attention.h.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attention.h"
#include "config.h"
#include "speculators/algorithm.h"
#include "speculators/nn/components.h"
#include "speculators/nn/losses.h"

namespace speculators {
namespace eagle3 {

// As eagle3/model_definitions.py: Eagle3FirstLayerMixin: the first layer splits its 2H input into
// embeddings and hidden state, normalises each (input_layernorm, hidden_norm), attends from the 2H
// concatenation and adds the residual (the normalised hidden state when norm_before_residual).
class Eagle3FirstLayerImpl : public nn::DecoderLayerImpl {
 public:
  Eagle3FirstLayerImpl(const TransformerConfig& config, bool norm_before_residual);
  torch::Tensor forward(const torch::Tensor& x, const nn::RotaryTables& rope,
                        const nn::AttentionKernel& kernel) override;

  nn::RMSNorm hidden_norm{nullptr};
  bool norm_before_residual;
};

// nn::model_classes(arch) with layer 0 replaced by the EAGLE-3 first layer.
nn::ModelClasses eagle3_model_classes(const Eagle3Config& config);

// How the TTT attention is computed: the chunked kernel, or the dense mask (tests only).
enum class AttentionMode { kChunked, kDense };

// Call arguments of forward (Eagle3DraftModel.get_trainer_kwargs).
struct StepOptions {
  std::int64_t ttt_steps = 3;
  double ttt_step_loss_decay = 1.0;
  nn::LossSpec loss = nn::parse_loss_fn("kl_div");
  static StepOptions from_json(const Json& call_args);
};

class Eagle3DraftModel : public DraftModel {
 public:
  // Builds every module with fresh weights (Linear ~ N(0, initializer_range), norms 1); the
  // frozen verifier tensors start as NaN until load_verifier_weights fills them, and
  // d2t as -1 until a mapping is set. Checks the result against state_spec(config).
  explicit Eagle3DraftModel(Eagle3Config config);

  torch::nn::ModuleList layers() override { return layers_; }
  std::shared_ptr<torch::nn::Module> embed_tokens() override { return embed_tokens_.ptr(); }
  std::shared_ptr<torch::nn::Module> lm_head() override { return lm_head_.ptr(); }
  std::vector<std::int64_t> target_layer_ids() const override { return config_.aux_layer_ids; }
  ForwardResult forward(const Batch& batch, const Json& call_args) override;
  Json config_json() const override { return config_.to_json(); }
  std::vector<std::string> keys_to_ignore_on_save() const override;
  std::vector<std::string> keys_allowed_missing_on_load() const override;
  void after_load(const BuildContext& ctx) override;
  std::unique_ptr<Proposer> make_proposer() override;

  ForwardResult run(const Batch& batch, const StepOptions& options);

  // Copies d2t/t2d into the buffers (only when the draft vocab is reduced); validates them.
  void set_vocab_mapping(const VocabMapping& mapping, const std::string& d2t_origin = "d2t",
                         const std::string& t2d_origin = "t2d");
  VocabMapping vocab_mapping() const;
  // As DraftVocabMixin._load_verifier_weights: embed_tokens / lm_head from the verifier only where
  // still NaN, verifier_lm_head and verifier_norm always; lm_head rows through t2d.
  // `verifier_hidden_size` is checked.
  void load_verifier_weights(const std::string& verifier_dir, std::int64_t verifier_hidden_size);
  // Throws Error naming every frozen tensor that still holds its NaN sentinel.
  void check_loaded() const;

  void set_attention_mode(AttentionMode mode) { attention_mode_ = mode; }
  void set_attention_chunk(std::int64_t rows) { attention_chunk_ = rows; }
  void set_loss_chunk(std::int64_t rows) { loss_chunk_ = rows; }
  // When set, run() appends each TTT step's logits [1, L, Vd] (detached) to `sink` (tests).
  void set_step_logits_sink(std::vector<torch::Tensor>* sink) { step_logits_sink_ = sink; }
  const Eagle3Config& config() const { return config_; }

  torch::nn::Embedding embed_tokens_{nullptr};
  nn::RMSNorm input_norm_{nullptr};            // iff norm_before_fc
  torch::nn::ModuleList fc_norm_{nullptr};     // iff fc_norm: one RMSNorm[H] per aux layer
  torch::nn::Linear fc_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  nn::RMSNorm norm_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  torch::nn::Linear verifier_lm_head_{nullptr};
  nn::RMSNorm verifier_norm_{nullptr};
  torch::Tensor d2t_;  // int64 [Vd], iff Vd != V
  torch::Tensor t2d_;  // bool [V], iff Vd != V

 private:
  friend class Eagle3Proposer;
  torch::Tensor project_aux(const torch::Tensor& hidden_states);
  // One TTT step through every decoder layer; x is [1, L, 2H] for the first layer.
  torch::Tensor decoder_step(torch::Tensor x, const nn::RotaryTables& rope, std::vector<TttCache>& caches,
                             const torch::Tensor& document_ids);
  void check_against_spec() const;

  Eagle3Config config_;
  nn::RotaryEmbedding rotary_;
  std::vector<std::shared_ptr<nn::DecoderLayerImpl>> layer_impls_;
  std::vector<std::optional<std::int64_t>> windows_;
  AttentionMode attention_mode_ = AttentionMode::kChunked;
  std::int64_t attention_chunk_ = 256;
  std::int64_t loss_chunk_ = 512;
  std::vector<torch::Tensor>* step_logits_sink_ = nullptr;
};

}  // namespace eagle3
}  // namespace speculators
