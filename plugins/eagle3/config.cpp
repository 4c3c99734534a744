// EAGLE-3 options, draft decoder synthesis, config.json and the state-dict layout
// (speculators/models/eagle3/config.py, core.py; speculators/train/cli.py).
#include "config.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/nn/losses.h"
#include "speculators/speculators_config.h"
#include "speculators/vocab.h"

namespace speculators {
namespace eagle3 {
namespace {

const std::vector<std::string> kArchs = {"llama", "qwen3"};
const std::vector<std::string> kActivations = {"silu", "gelu", "gelu_pytorch_tanh", "relu"};

std::string join(const std::vector<std::int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

bool json_bool(const Json& json, const std::string& key, bool class_default, const std::string& origin) {
  if (!json.contains(key) || json.at(key).is_null()) {
    // Eagle3SpeculatorConfig: class defaults differ from training defaults, and vLLM assumes
    // norm_before_residual = true when it is missing; say which one we took.
    log::warn(cat(origin, ": no '", key, "'; using the config class default ", class_default ? "true" : "false"));
    return class_default;
  }
  if (!json.at(key).is_bool()) fail_usage(cat(origin, ": '", key, "' must be true or false"));
  return json.at(key).as_bool();
}

std::int64_t resolve_draft_vocab_size(const BuildContext& ctx, const Eagle3Options& options) {
  const std::int64_t V = ctx.verifier.vocab_size;
  const auto requested = options.draft_vocab_size;
  if (ctx.vocab.empty()) {
    if (requested && *requested != V) {
      fail_usage(cat("draft_vocab_size=", *requested, " differs from the verifier vocab size ", V,
                     " but no vocab mapping is available: pass --d2t-path and --t2d-path, put d2t.npy and "
                     "t2d.npy in the data path, or give token frequencies (--token-freq-path)"));
    }
    return V;
  }
  const std::int64_t Vd = requested.value_or(ctx.vocab.d2t.size(0));
  if (Vd == V) {
    log::info("draft_vocab_size equals the verifier vocab size; the vocab mapping is not used");
    return V;
  }
  const std::string d2t = options.d2t_path.value_or("d2t.npy");
  const std::string t2d = options.t2d_path.value_or("t2d.npy");
  validate_vocab_mapping(ctx.vocab, V, Vd, d2t, t2d);
  return Vd;
}

// create_transformer_layer_config: rope_scaling is copied minus `type` (folded into rope_type, as
// Hugging Face does when it loads the verifier), `mrope_interleaved`, and `partial_rotary_factor`
// unless MRoPE.
std::optional<RopeScaling> draft_rope_scaling(const std::optional<RopeScaling>& verifier) {
  if (!verifier) return std::nullopt;
  RopeScaling out = *verifier;
  if (out.raw.is_object()) {
    Json::Object raw = out.raw.as_object();
    if (raw.count("type")) {
      if (!raw.count("rope_type")) raw["rope_type"] = raw["type"];
      raw.erase("type");
    }
    raw.erase("mrope_interleaved");
    if (!raw.count("mrope_section")) raw.erase("partial_rotary_factor");
    out.raw = Json(raw);
  }
  return out;
}

}  // namespace

Schema eagle3_schema() {
  return {
      opt_int("num_layers", 1, "Number of draft decoder layers (eagle3 default 1).").at_least(1).at_most(256),
      opt_string("draft_arch", "llama", "Draft decoder architecture.", "draft", kArchs),
      opt_string("draft_hidden_act", "silu", "Draft MLP activation; null takes the verifier's.", "draft"),
      opt_bool("norm_before_residual", true,
               "First layer: use the normalised hidden state as the residual."),
      opt_bool("norm_before_fc", true, "RMSNorm over the concatenated aux hidden states before fc."),
      opt_bool("fc_norm", false, "One RMSNorm per aux hidden state before fc (excludes norm_before_fc)."),
      opt_bool("norm_output", true, "Carry the post-norm hidden state to the next TTT step (EAGLE 3.1)."),
      opt_bool("embed_requires_grad", false, "Mark the token embedding trainable; as in the reference, the "
               "EAGLE-3 forward gives it no gradient."),
      opt_int("sliding_window", 2048, "Sliding attention window of the draft layers; null = full attention.")
          .at_least(1),
      opt_int_list("full_attention_indices", Json::array(), "Draft layers that use full attention.").at_least(0),
      opt_string("loss_fn", "kl_div",
                 "kl_div, rkl, jsd, ce, tv, nla, lk_hybrid, or a JSON object of weights such as "
                 "'{\"ce\": 0.1, \"tv\": 0.9}'.",
                 "loss"),
      opt_int("ttt_steps", 3, "Training-time-test steps (= speculative tokens).", "loss").at_least(1).at_most(64),
      opt_float("ttt_step_loss_decay", 1.0, "Loss weight gamma^k of TTT step k.", "loss").above(0),
  };
}

Eagle3Options Eagle3Options::from_args(const Args& args) {
  const Args job = args.with_defaults(eagle3_schema());
  Eagle3Options o;
  o.shape.arch = job.get_string("draft_arch");
  o.shape.hidden_act = job.get_optional_string("draft_hidden_act");
  o.shape.num_layers = job.get_int("num_layers");
  o.shape.sliding_window = job.get_optional_int("sliding_window");
  o.shape.full_attention_indices =
      job.get_optional_int_list("full_attention_indices").value_or(std::vector<std::int64_t>{});
  o.norm_before_residual = job.get_bool("norm_before_residual");
  o.norm_before_fc = job.get_bool("norm_before_fc");
  o.fc_norm = job.get_bool("fc_norm");
  o.norm_output = job.get_bool("norm_output");
  o.embed_requires_grad = job.get_bool("embed_requires_grad");
  o.loss_fn = job.get_string("loss_fn");
  o.ttt_steps = job.get_int("ttt_steps");
  o.ttt_step_loss_decay = job.get_double("ttt_step_loss_decay");
  o.target_layer_ids = job.get_optional_int_list("target_layer_ids");
  o.draft_vocab_size = job.get_optional_int("draft_vocab_size");
  o.d2t_path = job.get_optional_string("d2t_path");
  o.t2d_path = job.get_optional_string("t2d_path");
  o.verifier_name_or_path = job.get_optional_string("verifier_name_or_path");
  return o;
}

void validate_args(const Args& args) {
  const Eagle3Options o = Eagle3Options::from_args(args);
  if (o.norm_before_fc && o.fc_norm) {
    fail_usage("norm_before_fc and fc_norm are mutually exclusive; with --fc-norm also pass "
               "--no-norm-before-fc");
  }
  if (o.ttt_steps < 1) fail_usage(cat("ttt_steps must be >= 1, got ", o.ttt_steps));
  const double gamma = o.ttt_step_loss_decay;
  if (!std::isfinite(gamma) || gamma < 0) fail_usage(cat("ttt_step_loss_decay must be finite and >= 0, got ", gamma));
  const DraftShape& shape = o.shape;
  if (std::find(kArchs.begin(), kArchs.end(), shape.arch) == kArchs.end()) {
    fail_usage(cat("draft_arch '", shape.arch, "' is not supported; choose llama or qwen3"));
  }
  if (shape.hidden_act &&
      std::find(kActivations.begin(), kActivations.end(), *shape.hidden_act) == kActivations.end()) {
    fail_usage(cat("draft_hidden_act '", *shape.hidden_act, "' is not supported; choose silu, gelu, "
                   "gelu_pytorch_tanh or relu"));
  }
  if (shape.num_layers < 1) fail_usage(cat("num_layers must be >= 1, got ", shape.num_layers));
  if (shape.sliding_window && *shape.sliding_window < 1) {
    fail_usage(cat("sliding_window must be >= 1 (or null for full attention), got ", *shape.sliding_window));
  }
  for (auto i : shape.full_attention_indices) {
    if (i < 0 || i >= shape.num_layers) {
      fail_usage(cat("full_attention_indices: layer ", i, " does not exist (num_layers = ", shape.num_layers, ")"));
    }
  }
  nn::parse_loss_fn(o.loss_fn, "--loss-fn");
}

TransformerConfig synthesize_draft_config(const TransformerConfig& verifier, const Json& verifier_json,
                                          const DraftShape& shape) {
  if (std::find(kArchs.begin(), kArchs.end(), shape.arch) == kArchs.end()) {
    fail_usage(cat("draft_arch '", shape.arch, "' is not supported; choose llama or qwen3"));
  }
  const bool described = verifier_json.is_object() && verifier_json.size() > 0;
  auto has_key = [&](const char* key) {
    return !described || (verifier_json.contains(key) && !verifier_json.at(key).is_null());
  };
  TransformerConfig d;
  d.model_type = shape.arch;
  d.vocab_size = verifier.vocab_size;
  d.hidden_size = verifier.hidden_size;
  d.num_attention_heads = verifier.num_attention_heads;
  d.num_key_value_heads = verifier.num_key_value_heads;
  d.head_dim = verifier.head_dim;
  d.max_position_embeddings = verifier.max_position_embeddings;
  d.initializer_range = verifier.initializer_range;
  d.rms_norm_eps = verifier.rms_norm_eps;
  const std::int64_t H = d.hidden_size;
  // create_transformer_layer_config head fix-up: an explicit head_dim that does not divide H by the
  // head count wins.
  if (has_key("head_dim") && d.head_dim > 0 && H % d.num_attention_heads != 0 && H % d.head_dim == 0) {
    d.num_attention_heads = H / d.head_dim;
    if (d.num_attention_heads % d.num_key_value_heads != 0) d.num_key_value_heads = d.num_attention_heads;
  }
  if (has_key("intermediate_size") && verifier.intermediate_size > 0) {
    d.intermediate_size = verifier.intermediate_size;
  } else {
    d.intermediate_size = 3 * H;
    log::warn(cat("the verifier config has no intermediate_size (MoE?); the draft MLP uses 3 * hidden_size = ",
                  d.intermediate_size));
  }
  d.hidden_act = shape.hidden_act.value_or(verifier.hidden_act);
  d.num_hidden_layers = shape.num_layers;
  d.tie_word_embeddings = false;
  d.sliding_window = shape.sliding_window;
  const std::set<std::int64_t> full(shape.full_attention_indices.begin(), shape.full_attention_indices.end());
  for (std::int64_t i = 0; i < shape.num_layers; ++i) {
    // create_transformer_layer_config: every draft layer slides unless listed (or no window is
    // configured).
    const bool sliding = shape.sliding_window.has_value() && full.count(i) == 0;
    d.layer_types.push_back(sliding ? "sliding_attention" : "full_attention");
  }
  d.rope_theta = verifier.rope_theta > 0 ? verifier.rope_theta : 10000.0;
  d.rope_scaling = draft_rope_scaling(verifier.rope_scaling);
  d.validate("synthesised draft decoder config");
  return d;
}

std::vector<std::int64_t> resolve_target_layer_ids(const std::optional<std::vector<std::int64_t>>& requested,
                                                   std::int64_t n) {
  std::vector<std::int64_t> ids;
  const bool given = requested.has_value();
  if (given) {
    ids = *requested;
    if (ids.empty()) fail_usage("target_layer_ids must not be empty");
  } else {
    ids = {2, n / 2, n - 3};
    log::warn(cat("target_layer_ids not set; using [2, n/2, n-3] = ", join(ids), " for a verifier with ", n, " layers"));
  }
  for (auto id : ids) {
    if (id < 0 || id > n) {
      fail_usage(cat("target_layer_ids ", join(ids), ": layer ", id, " is outside [0, ", n,
                     "] for a verifier with ", n, " layers", given ? "" : "; pass --target-layer-ids"));
    }
  }
  return ids;
}

void Eagle3Config::validate(const std::string& origin) const {
  if (norm_before_fc && fc_norm) {
    fail_usage(cat(origin, ": norm_before_fc and fc_norm are mutually exclusive"));
  }
  if (aux_layer_ids.empty()) fail_usage(cat(origin, ": eagle_aux_hidden_state_layer_ids is empty"));
  if (draft_vocab_size < 1 || draft_vocab_size > layer.vocab_size) {
    fail_usage(cat(origin, ": draft_vocab_size ", draft_vocab_size, " must be in [1, ", layer.vocab_size, "]"));
  }
  if (layer.num_hidden_layers < 1) fail_usage(cat(origin, ": the draft needs at least one layer"));
  if (speculative_tokens < 1) fail_usage(cat(origin, ": speculative_tokens must be >= 1"));
  layer.validate(origin + ": transformer_layer_config");
}

Json Eagle3Config::to_json() const {
  Json j = Json::object();
  // Written by Hugging Face on save; vLLM ignores both.
  j["architectures"] = Json(std::vector<std::string>{"Eagle3DraftModel"});
  j["auto_map"] = Json::object({{"", "config.Eagle3SpeculatorConfig"}});
  j["draft_vocab_size"] = draft_vocab_size;
  j["dtype"] = "bfloat16";
  j["eagle_aux_hidden_state_layer_ids"] = Json(aux_layer_ids);
  j["embed_requires_grad"] = embed_requires_grad;
  j["fc_norm"] = fc_norm;
  j["norm_before_fc"] = norm_before_fc;
  j["norm_before_residual"] = norm_before_residual;
  j["norm_output"] = norm_output;
  j["speculators_config"] =
      SpeculatorsConfig{"eagle3", speculative_tokens, verifier_architectures, verifier_name_or_path}.to_json();
  j["speculators_model_type"] = "eagle3";
  j["speculators_version"] = SPECULATORS_VERSION;
  j["target_hidden_size"] = Json();
  j["tie_word_embeddings"] = false;
  j["transformer_layer_config"] = layer.to_layer_config_json();
  return j;
}

Eagle3Config Eagle3Config::from_json(const Json& json, const std::string& origin) {
  if (!json.is_object()) fail_usage(cat(origin, ": expected a JSON object"));
  const Json type = json.get("speculators_model_type", Json());
  if (!type.is_string() || type.as_string() != "eagle3") {
    fail_usage(cat(origin, ": speculators_model_type is ", type.is_string() ? "'" + type.as_string() + "'" : type.dump(),
                   "; expected 'eagle3'"));
  }
  if (!json.contains("transformer_layer_config") || !json.at("transformer_layer_config").is_object()) {
    fail_usage(cat(origin, ": transformer_layer_config must be an object"));
  }
  Eagle3Config c;
  c.layer = TransformerConfig::from_hf_json(json.at("transformer_layer_config"), origin + ": transformer_layer_config");
  const Json vd = json.get("draft_vocab_size", Json(32000));  // Eagle3SpeculatorConfig default
  if (!vd.is_int()) fail_usage(cat(origin, ": draft_vocab_size must be an integer"));
  c.draft_vocab_size = vd.as_int();
  // Eagle3SpeculatorConfig: class defaults (all false) apply to fields a file leaves out.
  c.norm_before_residual = json_bool(json, "norm_before_residual", false, origin);
  c.norm_before_fc = json_bool(json, "norm_before_fc", false, origin);
  c.fc_norm = json_bool(json, "fc_norm", false, origin);
  c.norm_output = json_bool(json, "norm_output", false, origin);
  c.embed_requires_grad = json_bool(json, "embed_requires_grad", false, origin);
  const Json aux = json.get("eagle_aux_hidden_state_layer_ids", Json());
  if (!aux.is_null()) {
    if (!aux.is_array()) fail_usage(cat(origin, ": eagle_aux_hidden_state_layer_ids must be a list of integers"));
    c.aux_layer_ids = aux.as_int_list();
  }
  const Json target_hidden = json.get("target_hidden_size", Json());
  if (!target_hidden.is_null() && (!target_hidden.is_int() || target_hidden.as_int() != c.layer.hidden_size)) {
    fail_usage(cat(origin, ": target_hidden_size ", target_hidden.dump(), " differs from the draft hidden size ",
                   c.layer.hidden_size, "; a hidden-size mismatch is not supported"));
  }
  SpeculatorsConfig defaults;
  defaults.speculative_tokens = c.speculative_tokens;
  const SpeculatorsConfig block = SpeculatorsConfig::from_config_json(json, origin, defaults);
  c.speculative_tokens = block.speculative_tokens;
  c.verifier_name_or_path = block.verifier_name_or_path;
  c.verifier_architectures = block.verifier_architectures;
  return c;
}

Eagle3Config config_from_build_context(const BuildContext& ctx) {
  const Eagle3Options o = Eagle3Options::from_args(ctx.args);
  Eagle3Config c;
  c.layer = synthesize_draft_config(ctx.verifier, ctx.verifier_json, o.shape);
  c.draft_vocab_size = resolve_draft_vocab_size(ctx, o);
  c.norm_before_residual = o.norm_before_residual;
  c.norm_before_fc = o.norm_before_fc;
  c.fc_norm = o.fc_norm;
  c.norm_output = o.norm_output;
  c.embed_requires_grad = o.embed_requires_grad;
  c.aux_layer_ids = resolve_target_layer_ids(o.target_layer_ids, ctx.verifier.num_hidden_layers);
  c.speculative_tokens = o.ttt_steps;
  c.verifier_name_or_path = !ctx.verifier_name.empty() ? ctx.verifier_name : o.verifier_name_or_path.value_or("");
  c.verifier_architectures = ctx.verifier.architectures;
  if (c.verifier_architectures.empty() && ctx.verifier_json.is_object() && ctx.verifier_json.contains("architectures")) {
    c.verifier_architectures = ctx.verifier_json.at("architectures").as_string_list();
  }
  c.validate("eagle3 job");
  return c;
}

std::vector<TensorSpec> state_spec(const Eagle3Config& config) {
  const auto& l = config.layer;
  const std::int64_t H = l.hidden_size, A = config.num_aux(), V = l.vocab_size, Vd = config.draft_vocab_size;
  const std::int64_t q_out = l.num_attention_heads * l.head_dim, kv_out = l.num_key_value_heads * l.head_dim;
  const std::int64_t I = l.intermediate_size;
  std::vector<TensorSpec> spec;
  auto add = [&](std::string name, std::vector<std::int64_t> shape, bool trainable, bool saved = true,
                 torch::ScalarType dtype = torch::kBFloat16) {
    spec.push_back({std::move(name), std::move(shape), dtype, saved, trainable});
  };
  add("embed_tokens.weight", {V, H}, config.embed_requires_grad);
  add("fc.weight", {H, A * H}, true);
  if (config.norm_before_fc) add("input_norm.weight", {A * H}, true);
  if (config.fc_norm) {
    for (std::int64_t i = 0; i < A; ++i) add(cat("fc_norm.", i, ".weight"), {H}, true);
  }
  for (std::int64_t i = 0; i < l.num_hidden_layers; ++i) {
    const std::string p = cat("layers.", i, ".");
    const std::int64_t in = i == 0 ? 2 * H : H;  // the first layer's q/k/v read 2H
    if (i == 0) add(p + "hidden_norm.weight", {H}, true);
    add(p + "input_layernorm.weight", {H}, true);
    add(p + "post_attention_layernorm.weight", {H}, true);
    add(p + "mlp.gate_proj.weight", {I, H}, true);
    add(p + "mlp.up_proj.weight", {I, H}, true);
    add(p + "mlp.down_proj.weight", {H, I}, true);
    if (l.mlp_bias) {
      add(p + "mlp.gate_proj.bias", {I}, true);
      add(p + "mlp.up_proj.bias", {I}, true);
      add(p + "mlp.down_proj.bias", {H}, true);
    }
    add(p + "self_attn.q_proj.weight", {q_out, in}, true);
    add(p + "self_attn.k_proj.weight", {kv_out, in}, true);
    add(p + "self_attn.v_proj.weight", {kv_out, in}, true);
    add(p + "self_attn.o_proj.weight", {H, q_out}, true);
    if (l.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q_out}, true);
      add(p + "self_attn.k_proj.bias", {kv_out}, true);
      add(p + "self_attn.v_proj.bias", {kv_out}, true);
      add(p + "self_attn.o_proj.bias", {H}, true);
    }
    if (l.model_type == "qwen3") {
      add(p + "self_attn.q_norm.weight", {l.head_dim}, true);
      add(p + "self_attn.k_norm.weight", {l.head_dim}, true);
    }
  }
  add("norm.weight", {H}, true);
  add("lm_head.weight", {Vd, H}, false);
  add("verifier_lm_head.weight", {Vd, H}, false, /*saved=*/false);
  add("verifier_norm.weight", {H}, false, /*saved=*/false);
  if (config.has_vocab_mapping()) {
    add("d2t", {Vd}, false, true, torch::kLong);
    add("t2d", {V}, false, true, torch::kBool);
  }
  std::sort(spec.begin(), spec.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  return spec;
}

}  // namespace eagle3
}  // namespace speculators
