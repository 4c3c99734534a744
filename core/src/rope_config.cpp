// Rotary parameters from a Hugging Face config.json (see rope_config.h): which dict holds them,
// which theta wins, the default for original_max_position_embeddings, and the per-type key sets
// of transformers/modeling_rope_utils.py (RotaryEmbeddingConfigMixin._validate_*_rope_parameters).
#include "rope_config.h"

#include <map>
#include <set>

#include "config_fields.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace {

using config_fields::optional_bool;
using config_fields::optional_double;
using config_fields::optional_string;
using config_fields::read_int;

// Keys every rope dict may carry, and the parameters of each rope type.
const std::set<std::string> kCommonKeys = {"rope_type", "type", "rope_theta", "partial_rotary_factor",
                                           "mrope_section", "mrope_interleaved"};
const std::map<std::string, std::set<std::string>> kTypeKeys = {
    {"default", {}},
    {"linear", {"factor"}},
    {"dynamic", {"factor"}},
    {"yarn", {"factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
              "mscale_all_dim", "truncate"}},
    {"longrope", {"short_factor", "long_factor", "original_max_position_embeddings", "attention_factor", "factor"}},
    {"llama3", {"factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"}},
};

std::string valid_types() {
  std::string out;
  for (const auto& entry : kTypeKeys) out += (out.empty() ? "" : ", ") + entry.first;
  return out;
}

bool present(const Json& obj, const std::string& key) { return obj.contains(key) && !obj.at(key).is_null(); }

std::vector<double> number_list(const Json& obj, const std::string& key, std::size_t length,
                                const std::string& scope) {
  const Json& v = obj.at(key);
  if (!v.is_array()) fail_usage(cat(scope, ": key '", key, "' must be a list of numbers, got ", v.dump()));
  std::vector<double> out;
  for (const Json& item : v.as_array()) {
    if (!item.is_number()) fail_usage(cat(scope, ": key '", key, "' must be a list of numbers, got ", item.dump()));
    out.push_back(item.as_double());
  }
  if (out.size() != length) {
    fail_usage(cat(scope, ": key '", key, "' has ", out.size(), " entries; head_dim / 2 = ", length, " are needed"));
  }
  return out;
}

void require(const Json& dict, const std::string& type, const std::string& key, const std::string& scope) {
  if (!present(dict, key)) fail_usage(cat(scope, ": rope_type '", type, "' requires key '", key, "'"));
}

// The type's fields from `dict`; `original` is the resolved original_max_position_embeddings.
RopeScaling parse_fields(const Json& dict, const std::string& type, std::int64_t original,
                         std::int64_t max_position_embeddings, std::int64_t head_dim, const std::string& scope) {
  RopeScaling r;
  r.rope_type = type;
  r.original_max_position_embeddings = original;
  if (type == "linear" || type == "dynamic" || type == "yarn" || type == "llama3") require(dict, type, "factor", scope);
  if (type == "llama3") {
    require(dict, type, "low_freq_factor", scope);
    require(dict, type, "high_freq_factor", scope);
    r.low_freq_factor = optional_double(dict, "low_freq_factor", 1.0, scope);
    r.high_freq_factor = optional_double(dict, "high_freq_factor", 4.0, scope);
  }
  // yarn / longrope: a missing factor is max_position_embeddings / original (_compute_*_parameters).
  r.factor = optional_double(dict, "factor", static_cast<double>(max_position_embeddings) / original, scope);
  if (present(dict, "attention_factor")) r.attention_factor = optional_double(dict, "attention_factor", 1.0, scope);
  if (type == "yarn") {
    // `or 32` / `or 1`: a zero counts as missing, as in _compute_yarn_parameters.
    const double fast = optional_double(dict, "beta_fast", 0.0, scope);
    const double slow = optional_double(dict, "beta_slow", 0.0, scope);
    r.beta_fast = fast != 0.0 ? fast : 32.0;
    r.beta_slow = slow != 0.0 ? slow : 1.0;
    if (present(dict, "mscale")) r.mscale = optional_double(dict, "mscale", 1.0, scope);
    if (present(dict, "mscale_all_dim")) r.mscale_all_dim = optional_double(dict, "mscale_all_dim", 1.0, scope);
    r.truncate = optional_bool(dict, "truncate", true, scope);
  }
  if (type == "longrope") {
    require(dict, type, "short_factor", scope);
    require(dict, type, "long_factor", scope);
    r.short_factor = number_list(dict, "short_factor", static_cast<std::size_t>(head_dim / 2), scope);
    r.long_factor = number_list(dict, "long_factor", static_cast<std::size_t>(head_dim / 2), scope);
  }
  if (!(r.factor > 0)) fail_usage(cat(scope, ": factor must be positive, got ", r.factor));
  if (type == "llama3" && !(r.high_freq_factor > r.low_freq_factor)) {
    fail_usage(cat(scope, ": rope_type 'llama3' needs high_freq_factor > low_freq_factor"));
  }
  if (r.original_max_position_embeddings <= 0) {
    fail_usage(cat(scope, ": original_max_position_embeddings must be positive, got ", original));
  }
  return r;
}

void check_full_rotary(const Json& obj, const std::string& scope) {
  const double partial = optional_double(obj, "partial_rotary_factor", 1.0, scope);
  if (partial != 1.0) {
    fail_usage(cat(scope, ": partial_rotary_factor ", partial, " is not supported (only full-head rotary)"));
  }
}

}  // namespace

RopeSettings read_rope_settings(const Json& cfg, std::int64_t max_position_embeddings, std::int64_t head_dim,
                                const std::string& where, double default_theta) {
  RopeSettings out;
  out.theta = optional_double(cfg, "rope_theta", default_theta, where);
  // convert_rope_params_to_dict: `rope_scaling or rope_parameters`.
  check_full_rotary(cfg, where);
  const bool legacy = present(cfg, "rope_scaling");
  const std::string source = legacy ? "rope_scaling" : "rope_parameters";
  if (!present(cfg, source)) return out;
  const Json& dict = cfg.at(source);
  const std::string scope = cat(where, " ", source);
  if (!dict.is_object()) fail_usage(cat(scope, ": must be an object or null, got ", dict.type_name(), " ", dict.dump()));
  if (legacy && present(cfg, "rope_parameters") && cfg.at("rope_parameters") != dict) {
    log::warn(cat(where, ": both rope_scaling and rope_parameters are set; rope_scaling is used, as transformers does"));
  }
  for (const char* nested : {"full_attention", "sliding_attention"}) {
    if (dict.contains(nested)) {
      fail_usage(cat(scope, ": per-layer-type rotary parameters ('", nested, "') are not supported"));
    }
  }
  // The dict's theta wins over a top-level one (setdefault in convert_rope_params_to_dict).
  if (present(dict, "rope_theta")) {
    const double theta = optional_double(dict, "rope_theta", out.theta, scope);
    if (present(cfg, "rope_theta") && theta != out.theta) {
      log::warn(cat(where, ": rope_theta ", out.theta, " and ", source, ".rope_theta ", theta, " differ; using ", theta,
                    ", as transformers does"));
    }
    out.theta = theta;
  }
  std::string type = optional_string(dict, "rope_type", "", scope);
  if (type.empty()) type = optional_string(dict, "type", "default", scope);
  auto keys = kTypeKeys.find(type);
  if (keys == kTypeKeys.end()) {
    fail_usage(cat(scope, ": rope_type '", type, "' is not supported; valid: ", valid_types()));
  }
  for (const auto& field : dict.as_object()) {
    if (!kCommonKeys.count(field.first) && !keys->second.count(field.first)) {
      fail_usage(cat(scope, ": key '", field.first, "' is not a parameter of rope_type '", type,
                     "' and would change the rotary embedding; it is not supported"));
    }
  }
  check_full_rotary(dict, scope);
  // standardize_rope_params: a top-level original_max_position_embeddings wins, then the dict's,
  // then max_position_embeddings.
  std::int64_t original = max_position_embeddings;
  if (present(dict, "original_max_position_embeddings")) original = read_int(dict, "original_max_position_embeddings", scope);
  if (present(cfg, "original_max_position_embeddings")) original = read_int(cfg, "original_max_position_embeddings", where);

  if (type == "default" && !legacy) return out;
  RopeScaling r = parse_fields(dict, type, original, max_position_embeddings, head_dim, scope);
  // The draft copies the dict minus `type` (folded into rope_type), `mrope_interleaved`,
  // `partial_rotary_factor` unless MRoPE, and the theta (written as rope_theta).
  Json raw = dict;
  Json::Object& fields = raw.as_object();
  fields["rope_type"] = Json(type);
  fields.erase("type");
  fields.erase("mrope_interleaved");
  fields.erase("rope_theta");
  if (!fields.count("mrope_section")) fields.erase("partial_rotary_factor");
  r.raw = raw;
  out.scaling = r;
  return out;
}

}  // namespace speculators
