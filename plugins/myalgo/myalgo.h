// The myalgo algorithm: what the plugin registers under the name "myalgo" (plugin.cpp).
//
// An Algorithm is the C++ form of the reference's pair of registered classes
// (speculators/config.py: SpeculatorModelConfig, speculators/model.py: SpeculatorModel):
// its schema() plays the config class's fields and the CLI flags, from_training_args() /
// from_config() the model class's factories, trainer_kwargs() get_trainer_kwargs(), and
// preprocess() the per-sample alignment that the reference hard-codes in its host. The host
// calls them in this order for a training job:
//
//   schema()             -> flags (--block-size), YAML keys, defaults, `--describe` output
//   validate(args)       -> after flags > YAML > defaults were resolved
//   target_layer_ids(ctx)-> which verifier layers the feature source must supply
//   preprocess(sample)   -> per sample, before packing
//   from_training_args   -> the model; the host checks layers()/lm_head()/embed_tokens()
//   trainer_kwargs(args) -> the call_args of forward, once for training, once for validation
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "speculators/algorithm.h"

namespace speculators {
namespace myalgo {

// The job options myalgo reads, filled in one place (from_args) from the resolved job. Names,
// defaults and ranges are declared once, in MyAlgo::schema(); a hand-built job that leaves an
// option out gets its declared default.
struct MyAlgoOptions {
  std::int64_t block_size = 0;
  std::int64_t num_layers = 0;
  std::string draft_arch;
  double head_loss_decay = 0;
  // The host's options: unset = default_aux_layer_ids / the size of the vocabulary mapping.
  std::optional<std::vector<std::int64_t>> target_layer_ids;
  std::optional<std::int64_t> draft_vocab_size;
  static MyAlgoOptions from_args(const Args& args);
};

class MyAlgo : public Algorithm {
 public:
  std::string name() const override { return "myalgo"; }
  std::string description() const override;
  Schema schema() const override;
  void validate(const Args& args) const override;
  std::vector<std::int64_t> target_layer_ids(const BuildContext& ctx) const override;
  std::shared_ptr<DraftModel> from_training_args(const BuildContext& ctx) const override;
  std::shared_ptr<DraftModel> from_config(const Json& config_json, const BuildContext& ctx) const override;
  std::pair<Json, Json> trainer_kwargs(const Args& args) const override;
  std::optional<Sample> preprocess(Sample sample) const override;
};

// The default aux layers for a verifier of n layers: the reference's [2, n/2, n-3]
// (speculators/models/utils.py: resolve_target_layer_ids)
// when those are distinct and >= 1; else up to three distinct ids spread inside [1, n-1], so
// that the final layer (whose linear read-out is the verifier's own prediction) stays out while
// there is another choice (n = 1 gives [1]).
std::vector<std::int64_t> default_aux_layer_ids(std::int64_t num_verifier_layers);

// The draft decoder config synthesised from the verifier's (as create_transformer_layer_config):
// same width, heads, rope and norm epsilon; `num_layers` layers of `arch`; full attention.
TransformerConfig draft_layer_config(const TransformerConfig& verifier, const std::string& arch,
                                     std::int64_t num_layers);

}  // namespace myalgo
}  // namespace speculators
