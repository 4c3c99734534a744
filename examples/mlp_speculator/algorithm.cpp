// The mlp_speculator algorithm: its job options, building a draft from a job or from a saved
// config.json, and the config.json object itself (mlp_speculator.h).
#include "mlp_speculator.h"

#include <optional>
#include <vector>

#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/speculators_config.h"

namespace speculators {
namespace mlp_speculator {

namespace {

std::int64_t int_field(const Json& json, const std::string& key, const std::string& origin) {
  const Json value = json.get(key, Json());
  if (!value.is_int()) fail_usage(cat(origin, ": \"", key, "\" must be an integer, got ", value.dump()));
  return value.as_int();
}

}  // namespace

void MlpConfig::validate(const std::string& origin) const {
  if (hidden_size < 1 || inner_dim < 1 || vocab_size < 1)
    fail_usage(cat(origin, ": emb_dim, inner_dim and vocab_size must be >= 1, got ", hidden_size, ", ", inner_dim, ", ",
                   vocab_size));
  if (n_predict < 1) fail_usage(cat(origin, ": n_predict must be >= 1, got ", n_predict));
  if (state_layer < 1) fail_usage(cat(origin, ": state_layer must be >= 1, got ", state_layer));
}

Json MlpConfig::to_json() const {
  const SpeculatorsConfig block{"mlp_speculator", n_predict, verifier_architectures, verifier_name_or_path};
  return Json::object({{"architectures", Json(std::vector<std::string>{"MLPSpeculatorDraftModel"})},
                       {"dtype", "bfloat16"},
                       {"emb_dim", hidden_size},
                       {"inner_dim", inner_dim},
                       {"n_predict", n_predict},
                       {"rms_norm_eps", rms_norm_eps},
                       {"speculators_config", block.to_json()},
                       {"speculators_model_type", "mlp_speculator"},
                       {"speculators_version", SPECULATORS_VERSION},
                       {"state_layer", state_layer},
                       {"vocab_size", vocab_size}});
}

MlpConfig MlpConfig::from_json(const Json& json, const std::string& origin) {
  if (!json.is_object()) fail_usage(cat(origin, ": expected a JSON object"));
  const Json type = json.get("speculators_model_type", Json());
  if (!type.is_string() || type.as_string() != "mlp_speculator")
    fail_usage(cat(origin, ": speculators_model_type is ", type.dump(), ", expected \"mlp_speculator\""));
  MlpConfig c;
  c.hidden_size = int_field(json, "emb_dim", origin);
  c.inner_dim = int_field(json, "inner_dim", origin);
  c.vocab_size = int_field(json, "vocab_size", origin);
  c.n_predict = int_field(json, "n_predict", origin);
  c.state_layer = int_field(json, "state_layer", origin);
  c.rms_norm_eps = json.get("rms_norm_eps", Json(1e-6)).as_double();
  const SpeculatorsConfig block = SpeculatorsConfig::from_config_json(json, origin);
  c.verifier_architectures = block.verifier_architectures;
  c.verifier_name_or_path = block.verifier_name_or_path;
  c.validate(origin);
  return c;
}

std::string MlpAlgorithm::description() const {
  return "MLP speculator (IBM style): n_predict stages, each mixing the state with the embedding of the "
         "previous token; no attention.";
}

Schema MlpAlgorithm::schema() const {
  return {
      opt_int("n_predict", 3, "tokens proposed per step: one MLP stage per token").at_least(1).at_most(16),
      opt_int("inner_dim", 0, "width of the stages; 0 takes the verifier's hidden size").at_least(0),
  };
}

namespace {

// The job options this plugin reads, taken from the resolved job in one place.
struct MlpOptions {
  std::int64_t n_predict = 0;
  std::int64_t inner_dim = 0;  // 0: the verifier's hidden size
  std::optional<std::vector<std::int64_t>> target_layer_ids;

  static MlpOptions from_args(const Args& args) {
    MlpOptions o;
    o.n_predict = args.get_int("n_predict");
    o.inner_dim = args.get_int("inner_dim");
    o.target_layer_ids = args.get_optional_int_list("target_layer_ids");
    return o;
  }
};

}  // namespace

// The state is the verifier's last layer; a job that asks for other layers is a mistake.
std::vector<std::int64_t> MlpAlgorithm::target_layer_ids(const BuildContext& ctx) const {
  const std::int64_t last = ctx.verifier.num_hidden_layers;
  const auto asked = MlpOptions::from_args(ctx.args).target_layer_ids;
  if (asked && *asked != std::vector<std::int64_t>{last})
    fail_usage(cat("mlp_speculator: target_layer_ids must be [", last, "] (the verifier's last layer) or unset, got ",
                   Json(*asked).dump()));
  return {last};
}

std::shared_ptr<DraftModel> MlpAlgorithm::from_training_args(const BuildContext& ctx) const {
  if (!ctx.vocab.empty())
    fail_usage("mlp_speculator: a reduced draft vocabulary (--draft-vocab-size, d2t.npy/t2d.npy) is not supported");
  MlpConfig c;
  c.hidden_size = ctx.verifier.hidden_size;
  c.vocab_size = ctx.verifier.vocab_size;
  c.rms_norm_eps = ctx.verifier.rms_norm_eps;
  const MlpOptions options = MlpOptions::from_args(ctx.args);
  c.n_predict = options.n_predict;
  c.inner_dim = options.inner_dim > 0 ? options.inner_dim : c.hidden_size;
  c.state_layer = target_layer_ids(ctx)[0];
  c.verifier_architectures = ctx.verifier.architectures;
  c.verifier_name_or_path = ctx.verifier_name;
  auto model = std::make_shared<MlpSpeculator>(std::move(c));
  model->load_verifier(ctx.verifier_path);
  return model;
}

std::shared_ptr<DraftModel> MlpAlgorithm::from_config(const Json& config_json, const BuildContext& ctx) const {
  MlpConfig c = MlpConfig::from_json(config_json, "config.json");
  if (ctx.verifier.hidden_size != 0 &&
      (ctx.verifier.hidden_size != c.hidden_size || ctx.verifier.vocab_size != c.vocab_size))
    fail_usage(cat("mlp_speculator: the checkpoint was trained for emb_dim ", c.hidden_size, " and vocab_size ",
                   c.vocab_size, ", but the verifier ", ctx.verifier_path, " has ", ctx.verifier.hidden_size, " and ",
                   ctx.verifier.vocab_size));
  return std::make_shared<MlpSpeculator>(std::move(c));  // the host loads the weights, then after_load
}

}  // namespace mlp_speculator
}  // namespace speculators
