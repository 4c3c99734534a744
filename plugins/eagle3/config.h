// The EAGLE-3 configuration (speculators/models/eagle3/config.py): the job options the plugin
// declares, the draft decoder config synthesised from the verifier's, the speculators config.json
// object, and the list of state-dict tensors a config implies — computed from the config alone,
// so an 8B-shaped checkpoint layout can be checked without allocating it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/args.h"
#include "speculators/json.h"
#include "speculators/nn/transformer_config.h"
#include "speculators/schema.h"

namespace speculators {
namespace eagle3 {

// The options eagle3 adds to the job (the host declares the common ones: verifier, data, vocab
// paths, num_layers, draft_vocab_size, target_layer_ids, ...). Training defaults as the reference's
// speculators/train/config/schema.py gives them.
Schema eagle3_schema();

// What shapes the synthesised draft decoder.
struct DraftShape {
  std::string arch = "llama";                 // "llama" | "qwen3"
  std::optional<std::string> hidden_act = "silu";  // nullopt = the verifier's
  std::int64_t num_layers = 1;
  std::optional<std::int64_t> sliding_window = 2048;  // nullopt = every layer full attention
  std::vector<std::int64_t> full_attention_indices;
};

// The job options eagle3 reads, filled in one place (from_args) from the resolved job. Names,
// defaults and ranges are declared once, in eagle3_schema(); a hand-built job that leaves an
// option out gets its declared default (a stated null stays: no activation = the verifier's, no
// window = full attention).
struct Eagle3Options {
  DraftShape shape;
  bool norm_before_residual = true;
  bool norm_before_fc = true;
  bool fc_norm = false;
  bool norm_output = true;
  bool embed_requires_grad = false;
  std::string loss_fn;
  std::int64_t ttt_steps = 0;
  double ttt_step_loss_decay = 0;
  // The host's options that eagle3 reads.
  std::optional<std::vector<std::int64_t>> target_layer_ids;  // unset: [2, n/2, n-3]
  std::optional<std::int64_t> draft_vocab_size;               // unset: from the mapping, or V
  std::optional<std::string> d2t_path, t2d_path;
  std::optional<std::string> verifier_name_or_path;
  static Eagle3Options from_args(const Args& args);
};

// Cross-field checks on a resolved job (Eagle3SpeculatorConfig._check_norm_flags and the ranges of
// each option).
void validate_args(const Args& args);

// speculators/train/cli.py: create_transformer_layer_config: the draft decoder config from the
// verifier's (text) config. `verifier_json` is its config.json object, used for "attribute present"
// decisions (head_dim, intermediate_size).
TransformerConfig synthesize_draft_config(const TransformerConfig& verifier, const Json& verifier_json,
                                          const DraftShape& shape);

// speculators/models/utils.py: resolve_target_layer_ids: --target-layer-ids (`given`), or
// [2, n/2, n-3] for a verifier with n layers.
std::vector<std::int64_t> resolve_target_layer_ids(const std::optional<std::vector<std::int64_t>>& given,
                                                   std::int64_t num_verifier_layers);

// The Eagle3SpeculatorConfig of the reference with its training-time values.
struct Eagle3Config {
  TransformerConfig layer;               // transformer_layer_config
  std::int64_t draft_vocab_size = 0;
  bool norm_before_residual = true;
  bool norm_before_fc = true;
  bool fc_norm = false;
  bool norm_output = true;
  bool embed_requires_grad = false;
  std::vector<std::int64_t> aux_layer_ids;   // eagle_aux_hidden_state_layer_ids
  std::int64_t speculative_tokens = 3;       // = ttt_steps
  std::string verifier_name_or_path;
  std::vector<std::string> verifier_architectures;

  std::int64_t hidden_size() const { return layer.hidden_size; }
  std::int64_t target_vocab_size() const { return layer.vocab_size; }
  std::int64_t num_aux() const { return static_cast<std::int64_t>(aux_layer_ids.size()); }
  bool has_vocab_mapping() const { return draft_vocab_size != layer.vocab_size; }

  // Throws Error naming `origin` for inconsistent values (norm_before_fc with fc_norm, ...).
  void validate(const std::string& origin = "eagle3 config") const;
  // The config.json object, every field explicit. transformers_version is left
  // out on purpose (docs/compatibility.md).
  Json to_json() const;
  // From a saved config.json; aux ids may be empty when the file holds null (resolve later).
  static Eagle3Config from_json(const Json& json, const std::string& origin = "config.json");
};

// Builds the config of a training job: the synthesised decoder, the resolved draft vocab size
// (from the mapping, or V without one), the aux layer ids and every flag.
Eagle3Config config_from_build_context(const BuildContext& ctx);

// One tensor of the draft's state dict, as it sits on disk: bf16 for floats.
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
  torch::ScalarType dtype = torch::kBFloat16;  // on-disk dtype
  bool saved = true;                           // false: verifier_* (kept in memory only)
  bool trainable = false;
};
// Every tensor (parameters and buffers) the model with this config holds, sorted by name.
std::vector<TensorSpec> state_spec(const Eagle3Config& config);

}  // namespace eagle3
}  // namespace speculators
