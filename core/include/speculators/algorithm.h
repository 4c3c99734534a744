// The algorithm contract (docs/design.md; the reference's speculators/model.py: SpeculatorModel):
// what a plugin registers under one name,
// and the draft model interface the host trains, validates, checkpoints and shards.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "speculators/args.h"
#include "speculators/json.h"
#include "speculators/nn/transformer_config.h"
#include "speculators/proposal.h"
#include "speculators/schema.h"

namespace speculators {

using TensorMap = std::map<std::string, torch::Tensor>;

// One unpacked sample (speculators/train/data.py: BaseDataset.__getitem__): hidden_states [T, A*H],
// verifier_last_hidden_states [T, H], input_ids [T], loss_mask [T], position_ids [T] (int64).
// Algorithms may add or rename keys in preprocess; the host packs the keys of the first sample.
struct Sample {
  TensorMap tensors;
  std::int64_t length() const;  // first dimension of input_ids
};

// One packed batch (speculators/train/data.py: CollateFn): every tensor is [1, L, ...]; plus
// document_ids [1, L] (-1 on padding). Keys: input_ids, hidden_states, verifier_last_hidden_states,
// loss_mask, position_ids, document_ids.
using Batch = TensorMap;

// What forward returns. `loss` is a scalar with grad. `metrics` holds 0-d tensors, either as
// `name_sum`/`name_total` pairs (the host reports Σsum/Σtotal) or plain scalars (averaged over
// batches and ranks). The loss must appear as `loss_sum`/`loss_total` or as `loss`.
struct ForwardResult {
  std::vector<torch::Tensor> output;
  torch::Tensor loss;
  TensorMap metrics;
};

// Draft vocabulary mapping (speculators/model.py: DraftVocabMixin). Both undefined when the draft
// uses the full vocabulary.
struct VocabMapping {
  torch::Tensor d2t;  // int64 [Vd] offsets: target = draft_idx + d2t[draft_idx]
  torch::Tensor t2d;  // bool [V]
  bool empty() const { return !d2t.defined(); }
};

// Everything a factory gets to build a model from a job.
struct BuildContext {
  TransformerConfig verifier;        // the verifier's own config
  Json verifier_json;                // its config.json (text_config for multimodal)
  std::string verifier_path;         // directory (weights are read from here)
  std::string verifier_name;         // as the user passed it (written to speculators_config)
  VocabMapping vocab;                // empty = full vocabulary
  Args args;                         // the resolved job
};

// Which optimizer a trainable parameter gets under --optimizer muon: kMuon (Muon's orthogonalised
// update, for hidden weight matrices) or kAdamW (everything else). Under --optimizer adamw every
// parameter gets AdamW whatever the group.
enum class OptimizerGroup { kMuon, kAdamW };

// The reference's rule (speculators/train/optimizers.py: split_named_params_for_muon), the default
// of DraftModel::optimizer_group: kMuon for a parameter that requires grad, is 2-D with both sizes
// > 1, and whose name contains none of embed_tokens, lm_head, codebook, markov_w1, markov_w2;
// kAdamW otherwise.
OptimizerGroup reference_optimizer_group(const std::string& name, const torch::Tensor& param);

// A trainable draft. Subclasses are torch modules built by their algorithm's factory.
class DraftModel : public torch::nn::Module {
 public:
  ~DraftModel() override = default;

  // The unit of sharding (the reference's SpeculatorModel.layers); must be non-empty.
  virtual torch::nn::ModuleList layers() = 0;
  virtual std::shared_ptr<torch::nn::Module> embed_tokens() = 0;
  virtual std::shared_ptr<torch::nn::Module> lm_head() = 0;
  // The verifier layers whose residual stream the host must supply, in concatenation order.
  virtual std::vector<std::int64_t> target_layer_ids() const = 0;

  virtual ForwardResult forward(const Batch& batch, const Json& call_args) = 0;

  // The speculators config.json object (docs/compatibility.md); the host only formats it.
  virtual Json config_json() const = 0;
  // State-dict keys never written to model.safetensors (e.g. verifier_lm_head.weight).
  virtual std::vector<std::string> keys_to_ignore_on_save() const { return {}; }
  // State-dict keys that may be absent when loading a checkpoint back
  // (the reference's _keys_to_ignore_on_load_missing).
  virtual std::vector<std::string> keys_allowed_missing_on_load() const { return {}; }
  // Called after weights were loaded from a checkpoint (re-derive frozen state, etc.).
  virtual void after_load(const BuildContext&) {}

  // Plugin ABI 1.1: inference. A proposer over this model (which must outlive it), or nullptr
  // when the algorithm cannot propose. The host calls this only on plugins built for ABI >= 1.1.
  virtual std::unique_ptr<Proposer> make_proposer() { return nullptr; }

  // Plugin ABI 2.1: the optimizer group of each trainable parameter (`name` as in
  // named_parameters()). The default is the reference's name-based rule; a draft whose module names
  // differ from the reference's declares its own groups here instead of renaming its modules. The
  // host calls this only on plugins built for ABI >= 2.1 (older ones get the default).
  virtual OptimizerGroup optimizer_group(const std::string& name, const torch::Tensor& param) const {
    return reference_optimizer_group(name, param);
  }
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;

  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  // The algorithm's own job options; the host adds flags and YAML keys for them. An option may
  // restate a host option of the same type to change its default (e.g. num_layers).
  virtual Schema schema() const = 0;
  // Cross-field checks after resolution (e.g. norm_before_fc and fc_norm are exclusive).
  virtual void validate(const Args&) const {}
  // The verifier layers the model will need for a job (resolves defaults such as [2, n/2, n-3]).
  virtual std::vector<std::int64_t> target_layer_ids(const BuildContext& ctx) const = 0;

  virtual std::shared_ptr<DraftModel> from_training_args(const BuildContext& ctx) const = 0;
  // Rebuilds a model from a saved config.json (for --from-pretrained and resume); the host
  // loads the weights afterwards.
  virtual std::shared_ptr<DraftModel> from_config(const Json& config_json, const BuildContext& ctx) const;

  // Call arguments for forward in training and validation (SpeculatorModel.get_trainer_kwargs).
  virtual std::pair<Json, Json> trainer_kwargs(const Args& args) const;
  // Per-sample alignment before packing (EAGLE-3: shift_batch). Return nullopt to drop.
  virtual std::optional<Sample> preprocess(Sample sample) const { return sample; }
};

}  // namespace speculators
