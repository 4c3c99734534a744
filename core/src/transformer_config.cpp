// TransformerConfig: reading a Hugging Face LlamaConfig / Qwen3Config config.json, writing the
// verifier config.json that `speculators-datagen make-verifier` produces, and writing the draft's
// `transformer_layer_config` with exactly the key set the reference writes.
#include "speculators/nn/transformer_config.h"

#include <algorithm>
#include <cmath>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace {

const char* const kValidModelTypes = "llama, qwen3";
const char* const kValidActivations = "silu, gelu, gelu_pytorch_tanh, relu";

bool is_supported_model_type(const std::string& t) { return t == "llama" || t == "qwen3"; }

// Typed readers that name the file and key at fault (Json's own errors name neither).
std::int64_t int_value(const Json& v, const std::string& key, const std::string& where) {
  if (v.is_int()) return v.as_int();
  if (v.is_float() && std::floor(v.as_double()) == v.as_double()) {
    return static_cast<std::int64_t>(v.as_double());
  }
  fail_usage(cat(where, ": key '", key, "' must be an integer, got ", v.type_name(), " ", v.dump()));
}

std::int64_t read_int(const Json& obj, const std::string& key, const std::string& where) {
  return int_value(obj.at(key), key, where);
}

std::int64_t required_int(const Json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) {
    fail_usage(cat(where, ": required key '", key, "' is missing"));
  }
  return read_int(obj, key, where);
}

std::int64_t optional_int(const Json& obj, const std::string& key, std::int64_t fallback,
                          const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  return read_int(obj, key, where);
}

std::optional<std::int64_t> nullable_int(const Json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return std::nullopt;
  const Json& v = obj.at(key);
  // eos_token_id is a list in some chat models (Llama-3.1-Instruct); the first id stands for it.
  if (v.is_array()) {
    if (v.as_array().empty()) return std::nullopt;
    return int_value(v.as_array().front(), key, where);
  }
  return read_int(obj, key, where);
}

double optional_double(const Json& obj, const std::string& key, double fallback, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_number()) {
    fail_usage(cat(where, ": key '", key, "' must be a number, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_double();
}

bool optional_bool(const Json& obj, const std::string& key, bool fallback, const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_bool()) {
    fail_usage(cat(where, ": key '", key, "' must be true or false, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_bool();
}

std::string optional_string(const Json& obj, const std::string& key, const std::string& fallback,
                            const std::string& where) {
  if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
  const Json& v = obj.at(key);
  if (!v.is_string()) {
    fail_usage(cat(where, ": key '", key, "' must be a string, got ", v.type_name(), " ", v.dump()));
  }
  return v.as_string();
}

// speculators/train/cli.py: create_transformer_layer_config: the draft copies the verifier's
// rope_scaling minus `type`, `mrope_interleaved`, and `partial_rotary_factor` unless
// `mrope_section` is present. HF first copies a legacy `type` into `rope_type`, so dropping `type`
// never loses the kind of scaling.
RopeScaling parse_rope_scaling(const Json& j, const std::string& where) {
  if (!j.is_object()) {
    fail_usage(cat(where, ": rope_scaling must be an object or null, got ", j.type_name(), " ", j.dump()));
  }
  RopeScaling r;
  Json raw = j;
  Json::Object& fields = raw.as_object();
  if (fields.count("rope_type")) {
    r.rope_type = optional_string(j, "rope_type", "default", where + " rope_scaling");
  } else if (fields.count("type")) {
    r.rope_type = optional_string(j, "type", "default", where + " rope_scaling");
    fields["rope_type"] = Json(r.rope_type);
  }
  fields.erase("type");
  fields.erase("mrope_interleaved");
  if (!fields.count("mrope_section")) fields.erase("partial_rotary_factor");

  const std::string scope = where + " rope_scaling";
  if (r.rope_type == "llama3") {
    for (const char* key : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (!j.contains(key) || j.at(key).is_null()) {
        fail_usage(cat(scope, ": rope_type 'llama3' requires key '", key, "'"));
      }
    }
    r.factor = optional_double(j, "factor", 1.0, scope);
    r.low_freq_factor = optional_double(j, "low_freq_factor", 1.0, scope);
    r.high_freq_factor = optional_double(j, "high_freq_factor", 4.0, scope);
    r.original_max_position_embeddings = read_int(j, "original_max_position_embeddings", scope);
  } else if (r.rope_type != "default") {
    fail_usage(cat(scope, ": rope_type '", r.rope_type, "' is not supported; valid: default, llama3"));
  }
  r.raw = raw;
  return r;
}

// transformers >= 5 writes `rope_parameters` ({rope_type, rope_theta, factor, ...}) instead of
// rope_scaling and rope_theta (e.g. LlamaConfig.save_pretrained, the reference's draft
// config.json). Keys written the older way take precedence; per-layer-type parameters are refused.
void read_rope_parameters(const Json& cfg, TransformerConfig& c, const std::string& where) {
  if (!cfg.contains("rope_parameters") || cfg.at("rope_parameters").is_null()) return;
  const Json& params = cfg.at("rope_parameters");
  if (!params.is_object()) {
    fail_usage(cat(where, ": rope_parameters must be an object or null, got ", params.type_name(), " ", params.dump()));
  }
  if (params.contains("sliding_attention") || params.contains("full_attention")) {
    fail_usage(cat(where, ": per-layer-type rope_parameters are not supported: ", params.dump()));
  }
  if (!cfg.contains("rope_theta")) c.rope_theta = optional_double(params, "rope_theta", c.rope_theta, where + " rope_parameters");
  if (c.rope_scaling) return;
  Json scaling = params;
  scaling.as_object().erase("rope_theta");
  RopeScaling parsed = parse_rope_scaling(scaling, where + " rope_parameters");
  if (parsed.rope_type != "default") c.rope_scaling = std::move(parsed);
}

std::vector<std::string> parse_layer_types(const Json& cfg, const TransformerConfig& c, const std::string& where) {
  if (cfg.contains("layer_types") && !cfg.at("layer_types").is_null()) {
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
  // Qwen3Config's own derivation; LlamaConfig has no sliding layers of its own.
  std::vector<std::string> out;
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const bool sliding = c.model_type == "qwen3" && c.sliding_window && i >= c.max_window_layers;
    out.push_back(sliding ? "sliding_attention" : "full_attention");
  }
  return out;
}

bool any_sliding(const TransformerConfig& c) {
  return std::any_of(c.layer_types.begin(), c.layer_types.end(),
                     [](const std::string& t) { return t == "sliding_attention"; });
}

Json nullable(const std::optional<std::int64_t>& v) { return v ? Json(static_cast<long long>(*v)) : Json(); }

}  // namespace

TransformerConfig TransformerConfig::from_hf_json(const Json& root, const std::string& origin) {
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
  if (!is_supported_model_type(c.model_type)) {
    fail_usage(cat(where, ": model_type '", c.model_type, "' is not supported; valid model types: ",
                   kValidModelTypes));
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
  c.intermediate_size = required_int(cfg, "intermediate_size", where);
  c.num_hidden_layers = required_int(cfg, "num_hidden_layers", where);
  c.num_attention_heads = required_int(cfg, "num_attention_heads", where);
  if (c.num_attention_heads <= 0) {
    fail_usage(cat(where, ": num_attention_heads must be positive, got ", c.num_attention_heads));
  }
  c.num_key_value_heads = optional_int(cfg, "num_key_value_heads", c.num_attention_heads, where);
  c.head_dim = optional_int(cfg, "head_dim", c.hidden_size / c.num_attention_heads, where);
  c.max_position_embeddings = optional_int(cfg, "max_position_embeddings", 2048, where);
  c.rms_norm_eps = optional_double(cfg, "rms_norm_eps", 1e-6, where);
  c.rope_theta = optional_double(cfg, "rope_theta", 10000.0, where);
  if (cfg.contains("rope_scaling") && !cfg.at("rope_scaling").is_null()) {
    c.rope_scaling = parse_rope_scaling(cfg.at("rope_scaling"), where);
  }
  read_rope_parameters(cfg, c, where);
  c.hidden_act = optional_string(cfg, "hidden_act", "silu", where);
  c.attention_bias = optional_bool(cfg, "attention_bias", false, where);
  c.attention_dropout = optional_double(cfg, "attention_dropout", 0.0, where);
  c.mlp_bias = optional_bool(cfg, "mlp_bias", false, where);
  c.initializer_range = optional_double(cfg, "initializer_range", 0.02, where);
  const Json& tie_source = cfg.contains("tie_word_embeddings") ? cfg : root;
  c.tie_word_embeddings = optional_bool(tie_source, "tie_word_embeddings", false, where);
  c.sliding_window = nullable_int(cfg, "sliding_window", where);
  c.max_window_layers = optional_int(cfg, "max_window_layers", 28, where);
  // Qwen3Config keeps its window only when use_sliding_window is set (HF default: false).
  if (c.model_type == "qwen3" && !optional_bool(cfg, "use_sliding_window", false, where)) {
    c.sliding_window.reset();
  }
  c.layer_types = parse_layer_types(cfg, c, where);
  c.pad_token_id = nullable_int(cfg, "pad_token_id", where);
  c.bos_token_id = nullable_int(cfg, "bos_token_id", where);
  c.eos_token_id = nullable_int(cfg, "eos_token_id", where);
  c.validate(where);
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  return from_hf_json(Json::read_file(path), path);
}

Json TransformerConfig::to_hf_json() const {
  Json j = Json::object();
  j["architectures"] = Json(std::vector<std::string>{model_type == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"});
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
  if (model_type == "qwen3") {
    j["max_window_layers"] = Json(static_cast<long long>(max_window_layers));
  } else {
    j["mlp_bias"] = mlp_bias;
    j["pretraining_tp"] = 1;
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

void TransformerConfig::validate(const std::string& origin) const {
  auto positive = [&](const char* key, std::int64_t v) {
    if (v <= 0) fail_usage(cat(origin, ": ", key, " must be positive, got ", v));
  };
  if (!is_supported_model_type(model_type)) {
    fail_usage(cat(origin, ": model_type '", model_type, "' is not supported; valid model types: ",
                   kValidModelTypes));
  }
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
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
    if (t != "full_attention" && t != "sliding_attention") {
      fail_usage(cat(origin, ": layer_types entry '", t, "' is not valid; valid: full_attention, sliding_attention"));
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
