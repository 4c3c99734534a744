// Eagle3Algorithm: glue between the host's contract and the EAGLE-3 config, model and data.
#include "eagle3_algorithm.h"

#include "config.h"
#include "data.h"
#include "model.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace eagle3 {

std::string Eagle3Algorithm::description() const {
  return "EAGLE-3: a one-layer draft over three verifier hidden states, trained with K-step "
         "training-time test (vLLM method eagle3)";
}

Schema Eagle3Algorithm::schema() const { return eagle3_schema(); }

void Eagle3Algorithm::validate(const Args& args) const { validate_args(args); }

std::vector<std::int64_t> Eagle3Algorithm::target_layer_ids(const BuildContext& ctx) const {
  return resolve_target_layer_ids(Eagle3Options::from_args(ctx.args).target_layer_ids, ctx.verifier.num_hidden_layers);
}

std::shared_ptr<DraftModel> Eagle3Algorithm::from_training_args(const BuildContext& ctx) const {
  auto model = std::make_shared<Eagle3DraftModel>(config_from_build_context(ctx));
  model->set_vocab_mapping(ctx.vocab);
  model->load_verifier_weights(ctx.verifier_path, ctx.verifier.hidden_size);
  model->check_loaded();
  return model;
}

std::shared_ptr<DraftModel> Eagle3Algorithm::from_config(const Json& config_json, const BuildContext& ctx) const {
  Eagle3Config config = Eagle3Config::from_json(config_json, "from_pretrained config.json");
  const Eagle3Options options = Eagle3Options::from_args(ctx.args);
  if (config.aux_layer_ids.empty()) {
    config.aux_layer_ids = resolve_target_layer_ids(options.target_layer_ids, ctx.verifier.num_hidden_layers);
  }
  if (config.layer.vocab_size != ctx.verifier.vocab_size || config.hidden_size() != ctx.verifier.hidden_size) {
    fail_usage(cat("from_pretrained config.json: the draft was built for vocab ", config.layer.vocab_size, " / hidden ",
                   config.hidden_size(), " but the verifier has vocab ", ctx.verifier.vocab_size, " / hidden ",
                   ctx.verifier.hidden_size));
  }
  if (!ctx.verifier_name.empty()) {
    config.verifier_name_or_path = ctx.verifier_name;
    if (!ctx.verifier.architectures.empty()) config.verifier_architectures = ctx.verifier.architectures;
  }
  // A job that states ttt_steps overrides the checkpoint's speculative_tokens.
  if (ctx.args.has("ttt_steps")) config.speculative_tokens = options.ttt_steps;
  auto model = std::make_shared<Eagle3DraftModel>(config);
  if (!config.has_vocab_mapping() || !ctx.vocab.empty()) {
    model->set_vocab_mapping(ctx.vocab);
    model->load_verifier_weights(ctx.verifier_path, ctx.verifier.hidden_size);
  }
  return model;
}

std::pair<Json, Json> Eagle3Algorithm::trainer_kwargs(const Args& args) const {
  // As Eagle3DraftModel.get_trainer_kwargs: the same call arguments for training and validation.
  const Eagle3Options options = Eagle3Options::from_args(args);
  Json kwargs = Json::object();
  kwargs["ttt_steps"] = options.ttt_steps;
  kwargs["ttt_step_loss_decay"] = options.ttt_step_loss_decay;
  kwargs["loss_fn"] = options.loss_fn;
  return {kwargs, kwargs};
}

std::optional<Sample> Eagle3Algorithm::preprocess(Sample sample) const { return shift_batch(sample); }

}  // namespace eagle3
}  // namespace speculators
