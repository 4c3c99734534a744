// The myalgo algorithm (myalgo.h): its job options, how a job becomes a model, and how a saved
// config.json becomes one again. Each override says what the host does with it.
#include "myalgo.h"

#include <cmath>
#include <set>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace myalgo {

std::string MyAlgo::description() const {
  return "Template algorithm: decoder layers over the verifier's aux features, then block_size "
         "residual heads; head j predicts the token j positions ahead (KL to the verifier).";
}

// Each option becomes a flag (--block-size), a YAML key in its group (train: draft: block_size)
// and a line of `speculators-train --describe myalgo`. The host's own options (num_layers,
// target_layer_ids, draft_vocab_size, lr, ...) are already there; restating one of the same
// type, as num_layers below, only changes its default for this algorithm.
Schema MyAlgo::schema() const {
  return {
      opt_int("block_size", 8, "tokens proposed per step: one residual head per token ahead").at_least(1).at_most(256),
      opt_int("num_layers", 1, "number of draft decoder layers").at_least(1).at_most(256),
      opt_string("draft_arch", "llama", "architecture of the draft decoder layers", "draft", {"llama", "qwen3"}),
      opt_float("head_loss_decay", kDefaultHeadLossDecay, "gamma: head j's loss is weighted by gamma^(j-1)",
                "loss").above(0),
  };
}

// A job built by the host holds every key of the host's and this schema; a test may pass fewer.
MyAlgoOptions MyAlgoOptions::from_args(const Args& args) {
  const Args job = args.with_defaults(MyAlgo().schema());
  MyAlgoOptions o;
  o.block_size = job.get_int("block_size");
  o.num_layers = job.get_int("num_layers");
  o.draft_arch = job.get_string("draft_arch");
  o.head_loss_decay = job.get_double("head_loss_decay");
  o.target_layer_ids = job.get_optional_int_list("target_layer_ids");
  o.draft_vocab_size = job.get_optional_int("draft_vocab_size");
  return o;
}

// Cross-field and range checks on the resolved job; an Error(kUsage) here exits with code 2.
void MyAlgo::validate(const Args& args) const {
  const MyAlgoOptions o = MyAlgoOptions::from_args(args);
  if (o.block_size < 1) fail_usage(cat("myalgo: block_size must be >= 1, got ", o.block_size));
  if (o.num_layers < 1) fail_usage(cat("myalgo: num_layers must be >= 1, got ", o.num_layers));
  const double gamma = o.head_loss_decay;
  if (!(gamma > 0.0) || !std::isfinite(gamma))
    fail_usage(cat("myalgo: head_loss_decay must be a positive number, got ", gamma));
}

std::vector<std::int64_t> default_aux_layer_ids(std::int64_t n) {
  if (n < 1) fail_usage(cat("myalgo: the verifier has ", n, " layers; at least 1 is needed"));
  const std::vector<std::int64_t> reference = {2, n / 2, n - 3};
  if (std::set<std::int64_t>(reference.begin(), reference.end()).size() == 3 && n - 3 >= 1) return reference;
  // Small verifiers: up to three distinct layers strictly inside the stack. Layer n (the final
  // output) is avoided while there is another choice: the verifier's own prediction is a linear
  // read-out of it, which would leave a draft nothing to learn for head 1.
  const std::int64_t count = std::min<std::int64_t>(3, n - 1);
  if (count < 1) return {n};
  std::vector<std::int64_t> ids;
  for (std::int64_t k = 1; k <= count; ++k) ids.push_back(k * n / (count + 1));  // distinct: n / (count+1) >= 1
  return ids;
}

// The host asks before it builds anything: the feature source (files, or the verifier run
// online) must produce exactly these layers, concatenated in this order, as hidden_states.
std::vector<std::int64_t> MyAlgo::target_layer_ids(const BuildContext& ctx) const {
  const std::int64_t n = ctx.verifier.num_hidden_layers;
  const auto given = MyAlgoOptions::from_args(ctx.args).target_layer_ids;
  if (!given) {
    auto ids = default_aux_layer_ids(n);
    log::info(cat("myalgo: target_layer_ids not set; using ", Json(ids).dump(), " for a verifier of ", n,
                  " layers"));
    return ids;
  }
  const std::vector<std::int64_t>& ids = *given;
  if (ids.empty()) fail_usage("myalgo: target_layer_ids is empty; give at least one verifier layer id");
  for (auto id : ids) {
    // id k = residual stream after k layers, so 0..n are the valid ids.
    if (id < 0 || id > n)
      fail_usage(cat("myalgo: target_layer_ids ", Json(ids).dump(), " contains ", id,
                     ", outside [0, ", n, "] for a verifier of ", n, " layers"));
  }
  return ids;
}

TransformerConfig draft_layer_config(const TransformerConfig& verifier, const std::string& arch,
                                     std::int64_t num_layers) {
  if (arch != "llama" && arch != "qwen3")
    fail_usage(cat("myalgo: draft_arch \"", arch, "\" is not one of llama, qwen3"));
  TransformerConfig c = verifier;  // width, heads, head_dim, rope, eps, vocab: as the verifier
  c.model_type = arch;
  c.architectures.clear();
  c.num_hidden_layers = num_layers;
  c.hidden_act = "silu";
  c.attention_bias = false;
  c.mlp_bias = false;
  c.tie_word_embeddings = false;
  c.sliding_window.reset();
  c.layer_types.assign(static_cast<std::size_t>(num_layers), "full_attention");
  // As create_transformer_layer_config: 3·H for verifiers without intermediate_size (MoE), and the
  // head fix-up: keep head_dim, derive the head count from the width.
  if (c.intermediate_size <= 0) c.intermediate_size = 3 * c.hidden_size;
  if (c.head_dim > 0 && c.hidden_size % c.num_attention_heads != 0 && c.hidden_size % c.head_dim == 0) {
    c.num_attention_heads = c.hidden_size / c.head_dim;
    if (c.num_attention_heads % c.num_key_value_heads != 0) c.num_key_value_heads = c.num_attention_heads;
  }
  return c;
}

// The C++ from_training_args (speculators/model.py: SpeculatorModel.from_training_args): take the
// keys this algorithm needs from the job, build the model, install the vocab mapping, then copy the
// verifier's frozen tensors.
std::shared_ptr<DraftModel> MyAlgo::from_training_args(const BuildContext& ctx) const {
  const MyAlgoOptions options = MyAlgoOptions::from_args(ctx.args);
  MyAlgoConfig config;
  config.layer_config = draft_layer_config(ctx.verifier, options.draft_arch, options.num_layers);
  config.block_size = options.block_size;
  config.aux_layer_ids = target_layer_ids(ctx);
  // The host resolves the mapping (d2t/t2d files, or built from token frequencies when
  // draft_vocab_size is set); the size follows from it.
  const std::int64_t full = ctx.verifier.vocab_size;
  config.draft_vocab_size = ctx.vocab.empty() ? options.draft_vocab_size.value_or(full) : ctx.vocab.d2t.size(0);
  if (!ctx.vocab.empty() && options.draft_vocab_size && *options.draft_vocab_size != config.draft_vocab_size)
    fail_usage(cat("myalgo: draft_vocab_size ", *options.draft_vocab_size,
                   " does not match the vocab mapping (d2t has ", config.draft_vocab_size, " entries)"));
  config.verifier_architectures = ctx.verifier.architectures;
  config.verifier_name_or_path = ctx.verifier_name;

  auto model = std::make_shared<MyAlgoModel>(std::move(config));
  model->set_vocab_mapping(ctx.vocab);
  model->load_verifier_weights(ctx.verifier_path);
  return model;
}

// For --from-pretrained and resume: the shapes come from the saved config.json; the host then
// loads model.safetensors into the model and calls after_load().
std::shared_ptr<DraftModel> MyAlgo::from_config(const Json& config_json, const BuildContext& ctx) const {
  MyAlgoConfig config = MyAlgoConfig::from_json(config_json, "config.json");
  const TransformerConfig& saved = config.layer_config;
  if (ctx.verifier.hidden_size != 0 &&
      (ctx.verifier.hidden_size != saved.hidden_size || ctx.verifier.vocab_size != saved.vocab_size))
    fail_usage(cat("myalgo: the checkpoint was trained for hidden_size ", saved.hidden_size, " and vocab_size ",
                   saved.vocab_size, ", but the verifier ", ctx.verifier_path, " has ", ctx.verifier.hidden_size,
                   " and ", ctx.verifier.vocab_size));
  auto model = std::make_shared<MyAlgoModel>(std::move(config));
  // Without a mapping from the job, a reduced vocabulary's d2t/t2d come from the checkpoint.
  if (!ctx.vocab.empty()) model->set_vocab_mapping(ctx.vocab);
  if (!ctx.verifier_path.empty()) model->load_verifier_weights(ctx.verifier_path);
  return model;
}

// The per-mode call_args of forward (SpeculatorModel.get_trainer_kwargs). Training and validation
// use the same loss here; an algorithm with, say, random anchors would fix them for validation.
std::pair<Json, Json> MyAlgo::trainer_kwargs(const Args& args) const {
  Json kwargs = Json::object({{"head_loss_decay", MyAlgoOptions::from_args(args).head_loss_decay}});
  return {kwargs, kwargs};
}

// Per-sample alignment before packing. EAGLE-3 shifts by one token here (shift_batch); myalgo
// needs no shift because loss.h indexes targets from the unshifted rows. Returning nullopt
// would drop the sample.
std::optional<Sample> MyAlgo::preprocess(Sample sample) const { return sample; }

}  // namespace myalgo
}  // namespace speculators
