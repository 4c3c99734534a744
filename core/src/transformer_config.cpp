// TransformerConfig: reading a Hugging Face LlamaConfig / Qwen3Config config.json, writing the
// verifier config.json that `speculators-datagen make-verifier` produces, and writing the draft's
// `transformer_layer_config` with exactly the key set the reference writes.
#include "speculators/nn/transformer_config.h"

#include <algorithm>
#include <cmath>

#include "speculators/error.h"
#include "speculators/log.h"
#include "config_fields.h"
#include "rope_config.h"
#include "verifier_gpt_oss.h"
#include "verifier_llama4.h"

namespace speculators {
namespace {

using config_fields::int_value;
using config_fields::nullable_int;
using config_fields::optional_bool;
using config_fields::optional_double;
using config_fields::optional_int;
using config_fields::optional_string;
using config_fields::read_int;
using config_fields::required_int;

const char* const kValidModelTypes = "llama, mistral, qwen2, qwen3, qwen3_moe, llama4_text, gpt_oss";
const char* const kValidActivations = "silu, gelu, gelu_pytorch_tanh, relu";

bool is_supported_model_type(const std::string& t) {
  return t == "llama" || t == "qwen3" || t == "qwen2" || t == "mistral" || t == "qwen3_moe" || t == "llama4_text" ||
         t == "gpt_oss";
}

// Qwen2/Qwen3 keep the window only with use_sliding_window; layers from max_window_layers on slide.
bool qwen_style_window(const std::string& t) { return t == "qwen2" || t == "qwen3" || t == "qwen3_moe"; }

std::vector<std::string> parse_layer_types(const Json& cfg, const TransformerConfig& c, const std::string& where) {
  const bool all = c.model_type == "mistral" || c.model_type == "qwen3_moe";
  const bool given = cfg.contains("layer_types") && !cfg.at("layer_types").is_null();
  if (given && all) {
    log::warn(cat(where, ": layer_types is ignored by the ", c.model_type, " model (as in transformers)"));
  }
  if (given && !all) {
    const Json& v = cfg.at("layer_types");
    if (!v.is_array()) {
      fail_usage(cat(where, ": key 'layer_types' must be a list of strings, got ", v.type_name()));
    }
    std::vector<std::string> out;
    for (const Json& item : v.as_array()) {
      if (!item.is_string()) {
        fail_usage(cat(where, ": key 'layer_types' must be a list of strings, got an element ", item.dump()));
      }
      out.push_back(item.as_string());
    }
    return out;
  }
  std::vector<std::string> out;
  if (c.model_type == "gpt_oss") {  // GptOssConfig: even layers slide, odd layers attend to everything
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) out.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
    return out;
  }
  // Qwen2Config / Qwen3Config derive it from max_window_layers; MistralModel and Qwen3MoeModel
  // slide every layer when a window is set; LlamaConfig has no sliding layers of its own.
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const bool sliding = c.sliding_window && (all || (qwen_style_window(c.model_type) && i >= c.max_window_layers));
    out.push_back(sliding ? "sliding_attention" : "full_attention");
  }
  return out;
}

bool any_sliding(const TransformerConfig& c) {
  return std::any_of(c.layer_types.begin(), c.layer_types.end(),
                     [](const std::string& t) { return t == "sliding_attention"; });
}

// Qwen3MoeConfig: routed experts (num_experts, alias num_local_experts) on layers with
// (i + 1) % decoder_sparse_step == 0 that are not in mlp_only_layers.
void read_moe_fields(const Json& cfg, TransformerConfig& c, const std::string& where) {
  const char* experts_key = cfg.contains("num_experts") ? "num_experts" : "num_local_experts";
  c.num_experts = optional_int(cfg, experts_key, 128, where);
  c.num_experts_per_tok = optional_int(cfg, "num_experts_per_tok", 8, where);
  c.moe_intermediate_size = optional_int(cfg, "moe_intermediate_size", 768, where);
  c.norm_topk_prob = optional_bool(cfg, "norm_topk_prob", false, where);
  c.decoder_sparse_step = optional_int(cfg, "decoder_sparse_step", 1, where);
  if (cfg.contains("mlp_only_layers") && !cfg.at("mlp_only_layers").is_null()) {
    const Json& v = cfg.at("mlp_only_layers");
    if (!v.is_array()) fail_usage(cat(where, ": key 'mlp_only_layers' must be a list of layer indices, got ", v.dump()));
    for (const Json& item : v.as_array()) c.mlp_only_layers.push_back(int_value(item, "mlp_only_layers", where));
  }
}

// Llama4TextConfig: no sliding window; chunked layers, NoPE layers and the experts are read (and
// checked) by the family's own code, which reads them again from `family_config`.
void read_llama4_fields(const Json& cfg, TransformerConfig& c, const std::string& where) {
  const Llama4Settings s = read_llama4_settings(cfg, c, where);
  c.sliding_window.reset();
  c.layer_types.clear();
  for (bool chunked : s.chunked_layers) c.layer_types.push_back(chunked ? "chunked_attention" : "full_attention");
  c.family_config = cfg;
}

// The fields whose meaning depends on the family: biases, tied head, sliding window, experts.
void read_family_fields(const Json& cfg, const Json& root, TransformerConfig& c, const std::string& where) {
  // Which biases each family has: LlamaAttention/LlamaMLP and Qwen3(Moe)Attention read
  // attention_bias (and Llama mlp_bias); Qwen2Attention always has q/k/v biases and no o_proj
  // bias; MistralAttention has none. The flags of families that ignore them are not read.
  if (c.model_type == "llama" || c.model_type == "qwen3" || c.model_type == "qwen3_moe" ||
      c.model_type == "llama4_text" || c.model_type == "gpt_oss") {
    c.attention_bias = optional_bool(cfg, "attention_bias", c.model_type == "gpt_oss", where);
  }
  if (c.model_type == "llama") c.mlp_bias = optional_bool(cfg, "mlp_bias", false, where);
  c.attention_dropout = optional_double(cfg, "attention_dropout", 0.0, where);
  c.initializer_range = optional_double(cfg, "initializer_range", 0.02, where);
  const Json& tie_source = cfg.contains("tie_word_embeddings") ? cfg : root;
  c.tie_word_embeddings = optional_bool(tie_source, "tie_word_embeddings", false, where);
  // MistralConfig, Qwen2Config and Qwen3(Moe)Config default a missing window to 4096.
  // GptOssConfig's default is 128.
  const bool window_default = c.model_type != "llama" && !cfg.contains("sliding_window");
  const std::int64_t default_window = c.model_type == "gpt_oss" ? 128 : 4096;
  c.sliding_window = window_default ? std::optional<std::int64_t>(default_window) : nullable_int(cfg, "sliding_window", where);
  c.max_window_layers = optional_int(cfg, "max_window_layers", 28, where);
  if (qwen_style_window(c.model_type) && !optional_bool(cfg, "use_sliding_window", false, where)) {
    c.sliding_window.reset();
  }
  if (c.model_type == "qwen3_moe") read_moe_fields(cfg, c, where);
  if (c.model_type == "llama4_text") read_llama4_fields(cfg, c, where);
  if (c.model_type == "gpt_oss") {
    read_gpt_oss_settings(cfg, where);  // checked now, read again by the verifier
    c.family_config = cfg;
  }
}

// Keys of other decoder families that change the computation and have no implementation here:
// present with a non-null, non-default value, they are an error rather than silently ignored.
void refuse_unsupported_fields(const Json& cfg, const std::string& model_type, const std::string& where) {
  static const char* const kKeys[] = {"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
                                      "attention_chunk_size",    "no_rope_layers",          "use_qk_norm",
                                      "logit_scale",             "embedding_multiplier",    "residual_multiplier",
                                      "attention_multiplier",    "logits_scaling",          "shared_expert_intermediate_size",
                                      "moe_layer_freq",          "n_shared_experts",        "qk_layernorm"};
  for (const char* key : kKeys) {
    if (!cfg.contains(key) || cfg.at(key).is_null()) continue;
    const std::string k = key;
    if (model_type == "llama4_text" && (k == "attention_chunk_size" || k == "no_rope_layers" || k == "use_qk_norm")) {
      continue;  // read by read_llama4_settings
    }
    const Json& v = cfg.at(key);
    if ((v.is_bool() && !v.as_bool()) || (v.is_array() && v.as_array().empty())) continue;
    fail_usage(cat(where, ": key '", key, "' = ", v.dump(), " changes the computation and is not supported"));
  }
  if (cfg.contains("pretraining_tp") && cfg.at("pretraining_tp").is_number() && cfg.at("pretraining_tp").as_double() != 1.0) {
    log::warn(cat(where, ": pretraining_tp ", cfg.at("pretraining_tp").dump(), " is ignored, as transformers 5 does"));
  }
}

// The family's own defaults for keys a config may omit (LlamaConfig's elsewhere; Llama4TextConfig,
// GptOssConfig).
struct FamilyDefaults {
  std::optional<std::int64_t> head_dim;  // none: hidden_size / num_attention_heads
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
};

FamilyDefaults family_defaults(const std::string& model_type) {
  if (model_type == "llama4_text") return FamilyDefaults{128, 131072, 1e-5, 500000.0};
  if (model_type == "gpt_oss") return FamilyDefaults{64, 131072, 1e-5, 150000.0};
  return FamilyDefaults{};
}

std::string causal_lm_class(const std::string& model_type) {
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "qwen3") return "Qwen3ForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen3_moe") return "Qwen3MoeForCausalLM";
  return "LlamaForCausalLM";
}

Json nullable(const std::optional<std::int64_t>& v) { return v ? Json(static_cast<long long>(*v)) : Json(); }

}  // namespace

TransformerConfig TransformerConfig::from_hf_json(const Json& root, const std::string& origin, bool widths_only_ok) {
  if (!root.is_object()) fail_usage(cat(origin, ": expected a JSON object, got ", root.type_name()));
  // Multimodal verifiers (as create_transformer_layer_config): the text_config is the decoder.
  const bool multimodal = root.contains("text_config") && root.at("text_config").is_object();
  const Json& cfg = multimodal ? root.at("text_config") : root;
  const std::string where = multimodal ? origin + " (text_config)" : origin;

  TransformerConfig c;
  if (!cfg.contains("model_type") || !cfg.at("model_type").is_string()) {
    fail_usage(cat(where, ": key 'model_type' is missing or not a string; valid model types: ", kValidModelTypes));
  }
  c.model_type = cfg.at("model_type").as_string();
  if (!is_supported_model_type(c.model_type) && widths_only_ok) {
    c.widths_only = true;
    log::warn(cat(where, ": model_type '", c.model_type, "' cannot be run here; only its widths and rotary "
                  "parameters are read (enough for pre-computed features: embedding, final norm and head)"));
  } else if (!is_supported_model_type(c.model_type)) {
    fail_usage(cat(where, ": model_type '", c.model_type, "' is not supported; valid model types: ",
                   kValidModelTypes, " (with pre-computed features, --data-source files, any decoder loads)"));
  }
  const Json& arch_source = cfg.contains("architectures") ? cfg : root;
  if (arch_source.contains("architectures") && !arch_source.at("architectures").is_null()) {
    const Json& a = arch_source.at("architectures");
    if (!a.is_array()) fail_usage(cat(where, ": key 'architectures' must be a list of strings"));
    for (const Json& item : a.as_array()) {
      if (!item.is_string()) fail_usage(cat(where, ": key 'architectures' must be a list of strings"));
      c.architectures.push_back(item.as_string());
    }
  }
  c.vocab_size = required_int(cfg, "vocab_size", where);
  c.hidden_size = required_int(cfg, "hidden_size", where);
  // Qwen3MoeConfig's dense layers default to 6144 (the draft's fallback looks at the file itself).
  if (c.widths_only) {
    c.intermediate_size = optional_int(cfg, "intermediate_size", 0, where);
  } else {
    c.intermediate_size = c.model_type == "qwen3_moe" ? optional_int(cfg, "intermediate_size", 6144, where)
                                                      : required_int(cfg, "intermediate_size", where);
  }
  c.num_hidden_layers = required_int(cfg, "num_hidden_layers", where);
  // Per-layer lists (layer_types, the layers themselves) are sized from this before anything else
  // can check it: a config claiming a million layers stops here, not after allocating them.
  constexpr std::int64_t kMaxLayers = 10000;
  if (c.num_hidden_layers > kMaxLayers) {
    fail_usage(cat(where, ": num_hidden_layers ", c.num_hidden_layers, " is more than any decoder this trainer builds "
                   "(at most ", kMaxLayers, ")"));
  }
  c.num_attention_heads = required_int(cfg, "num_attention_heads", where);
  if (c.num_attention_heads <= 0) {
    fail_usage(cat(where, ": num_attention_heads must be positive, got ", c.num_attention_heads));
  }
  c.num_key_value_heads = optional_int(cfg, "num_key_value_heads", c.num_attention_heads, where);
  const FamilyDefaults defaults = family_defaults(c.model_type);
  c.head_dim = optional_int(cfg, "head_dim", defaults.head_dim.value_or(c.hidden_size / c.num_attention_heads), where);
  c.max_position_embeddings = optional_int(cfg, "max_position_embeddings", defaults.max_position_embeddings, where);
  c.rms_norm_eps = optional_double(cfg, "rms_norm_eps", defaults.rms_norm_eps, where);
  Json rope_source = cfg;
  if (c.model_type == "gpt_oss" && !cfg.contains("rope_scaling") && !cfg.contains("rope_parameters")) {
    rope_source["rope_parameters"] = gpt_oss_default_rope();  // GptOssConfig.__post_init__
  }
  const RopeSettings rope =
      read_rope_settings(rope_source, c.max_position_embeddings, c.head_dim, where, defaults.rope_theta);
  c.rope_theta = rope.theta;
  c.rope_scaling = rope.scaling;
  c.hidden_act = optional_string(cfg, "hidden_act", "silu", where);
  read_family_fields(cfg, root, c, where);
  if (!c.widths_only) refuse_unsupported_fields(cfg, c.model_type, where);
  if (c.widths_only) {
    c.sliding_window.reset();  // attention is never run for such a config
    c.layer_types.assign(static_cast<std::size_t>(c.num_hidden_layers), "full_attention");
  } else if (c.model_type != "llama4_text") {
    c.layer_types = parse_layer_types(cfg, c, where);
  }
  c.pad_token_id = nullable_int(cfg, "pad_token_id", where);
  c.bos_token_id = nullable_int(cfg, "bos_token_id", where);
  c.eos_token_id = nullable_int(cfg, "eos_token_id", where);
  c.validate(where);
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  Json root;
  try {
    root = Json::read_file(path);
  } catch (const Error& e) {
    // A config.json that is not JSON (or too deep, too large) is a bad input like any bad key in
    // it: exit code 2 with the reader's message, which names the file, line and column.
    if (e.code() != ExitCode::kFailure) throw;
    fail_usage(e.what());
  }
  return from_hf_json(root, path);
}

Json TransformerConfig::to_hf_json() const {
  Json j = Json::object();
  j["architectures"] = Json(std::vector<std::string>{causal_lm_class(model_type)});
  j["model_type"] = model_type;
  j["torch_dtype"] = "float32";
  j["vocab_size"] = Json(static_cast<long long>(vocab_size));
  j["hidden_size"] = Json(static_cast<long long>(hidden_size));
  j["intermediate_size"] = Json(static_cast<long long>(intermediate_size));
  j["num_hidden_layers"] = Json(static_cast<long long>(num_hidden_layers));
  j["num_attention_heads"] = Json(static_cast<long long>(num_attention_heads));
  j["num_key_value_heads"] = Json(static_cast<long long>(num_key_value_heads));
  j["head_dim"] = Json(static_cast<long long>(head_dim));
  j["max_position_embeddings"] = Json(static_cast<long long>(max_position_embeddings));
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = rope_scaling ? rope_scaling->raw : Json();
  j["hidden_act"] = hidden_act;
  j["attention_bias"] = attention_bias;
  j["attention_dropout"] = attention_dropout;
  j["initializer_range"] = initializer_range;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["sliding_window"] = nullable(sliding_window);
  j["use_sliding_window"] = any_sliding(*this) && sliding_window.has_value();
  if (!layer_types.empty()) j["layer_types"] = Json(layer_types);
  j["pad_token_id"] = nullable(pad_token_id);
  j["bos_token_id"] = nullable(bos_token_id);
  j["eos_token_id"] = nullable(eos_token_id);
  j["use_cache"] = true;
  if (qwen_style_window(model_type)) {
    j["max_window_layers"] = Json(static_cast<long long>(max_window_layers));
  } else {
    j["mlp_bias"] = mlp_bias;
    j["pretraining_tp"] = 1;
  }
  if (num_experts > 0) {
    j["num_experts"] = Json(static_cast<long long>(num_experts));
    j["num_experts_per_tok"] = Json(static_cast<long long>(num_experts_per_tok));
    j["moe_intermediate_size"] = Json(static_cast<long long>(moe_intermediate_size));
    j["norm_topk_prob"] = norm_topk_prob;
    j["decoder_sparse_step"] = Json(static_cast<long long>(decoder_sparse_step));
    j["mlp_only_layers"] = Json(mlp_only_layers);
  }
  return j;
}

Json TransformerConfig::to_layer_config_json() const {
  // The LlamaConfig diff dict (PretrainedConfig.to_diff_dict) under transformers 4.57. A
  // Qwen3Config diff dict has no `mlp_bias`/`pretraining_tp` (not Qwen3Config attributes) and adds
  // `max_window_layers`; it also drops the window when no layer slides (Qwen3Config ties
  // sliding_window to use_sliding_window).
  const bool sliding = any_sliding(*this);
  Json j = Json::object();
  j["attention_bias"] = attention_bias;
  j["attention_dropout"] = attention_dropout;
  j["head_dim"] = Json(static_cast<long long>(head_dim));
  j["hidden_act"] = hidden_act;
  j["hidden_size"] = Json(static_cast<long long>(hidden_size));
  j["initializer_range"] = initializer_range;
  j["intermediate_size"] = Json(static_cast<long long>(intermediate_size));
  j["layer_types"] = Json(layer_types);
  j["max_position_embeddings"] = Json(static_cast<long long>(max_position_embeddings));
  j["model_type"] = model_type;
  j["num_attention_heads"] = Json(static_cast<long long>(num_attention_heads));
  j["num_hidden_layers"] = Json(static_cast<long long>(num_hidden_layers));
  j["num_key_value_heads"] = Json(static_cast<long long>(num_key_value_heads));
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_scaling"] = rope_scaling ? rope_scaling->raw : Json();
  j["rope_theta"] = static_cast<double>(rope_theta);
  j["sliding_window"] = nullable(sliding_window);
  j["use_cache"] = true;
  j["use_sliding_window"] = sliding;
  j["vocab_size"] = Json(static_cast<long long>(vocab_size));
  if (model_type == "qwen3") {
    j["max_window_layers"] = Json(static_cast<long long>(max_window_layers));
    if (!sliding) j["sliding_window"] = Json();
  } else {
    j["mlp_bias"] = mlp_bias;
    j["pretraining_tp"] = 1;
  }
  return j;
}

std::optional<std::int64_t> TransformerConfig::window_of_layer(std::int64_t i) const {
  if (i < 0 || i >= num_hidden_layers) {
    fail(cat("window_of_layer: layer ", i, " out of range [0, ", num_hidden_layers, ")"));
  }
  if (layer_types.empty() || layer_types[static_cast<std::size_t>(i)] != "sliding_attention") return std::nullopt;
  // HF: a sliding layer without a window attends to everything.
  return sliding_window;
}

bool TransformerConfig::is_sparse_layer(std::int64_t i) const {
  if (num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), i) != mlp_only_layers.end()) return false;
  return (i + 1) % decoder_sparse_step == 0;
}

void TransformerConfig::validate(const std::string& origin) const {
  auto positive = [&](const char* key, std::int64_t v) {
    if (v <= 0) fail_usage(cat(origin, ": ", key, " must be positive, got ", v));
  };
  if (!widths_only && !is_supported_model_type(model_type)) {
    fail_usage(cat(origin, ": model_type '", model_type, "' is not supported; valid model types: ",
                   kValidModelTypes));
  }
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  if (!widths_only) positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads % num_key_value_heads != 0) {
    fail_usage(cat(origin, ": num_attention_heads (", num_attention_heads,
                   ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")"));
  }
  if (head_dim % 2 != 0) fail_usage(cat(origin, ": head_dim must be even for rotary embeddings, got ", head_dim));
  if (!(rms_norm_eps > 0)) fail_usage(cat(origin, ": rms_norm_eps must be positive, got ", rms_norm_eps));
  if (!(rope_theta > 0)) fail_usage(cat(origin, ": rope_theta must be positive, got ", rope_theta));
  if (hidden_act != "silu" && hidden_act != "gelu" && hidden_act != "gelu_pytorch_tanh" && hidden_act != "relu") {
    fail_usage(cat(origin, ": hidden_act '", hidden_act, "' is not supported; valid: ", kValidActivations));
  }
  if (sliding_window && *sliding_window <= 0) {
    fail_usage(cat(origin, ": sliding_window must be positive or null, got ", *sliding_window));
  }
  if (!layer_types.empty() && static_cast<std::int64_t>(layer_types.size()) != num_hidden_layers) {
    fail_usage(cat(origin, ": layer_types has ", layer_types.size(), " entries but num_hidden_layers is ",
                   num_hidden_layers));
  }
  for (const std::string& t : layer_types) {
    if (t == "chunked_attention" && model_type == "llama4_text") continue;
    if (t != "full_attention" && t != "sliding_attention") {
      fail_usage(cat(origin, ": layer_types entry '", t, "' is not valid; valid: full_attention, sliding_attention"));
    }
  }
  if (num_experts > 0) {
    positive("num_experts_per_tok", num_experts_per_tok);
    positive("moe_intermediate_size", moe_intermediate_size);
    positive("decoder_sparse_step", decoder_sparse_step);
    if (num_experts_per_tok > num_experts) {
      fail_usage(cat(origin, ": num_experts_per_tok (", num_experts_per_tok, ") exceeds num_experts (", num_experts, ")"));
    }
  }
  if (rope_scaling && rope_scaling->rope_type == "llama3") {
    if (!(rope_scaling->factor > 0) || rope_scaling->original_max_position_embeddings <= 0 ||
        !(rope_scaling->high_freq_factor > rope_scaling->low_freq_factor)) {
      fail_usage(cat(origin, ": rope_scaling (llama3) needs factor > 0, original_max_position_embeddings > 0 and "
                             "high_freq_factor > low_freq_factor"));
    }
  }
}

}  // namespace speculators
