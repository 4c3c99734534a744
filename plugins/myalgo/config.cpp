// myalgo's config.json: written next to model.safetensors in every checkpoint and read back by
// from_config (--from-pretrained, resume). The layout is the speculators one
// (speculators/config.py: SpeculatorModelConfig, SpeculatorsConfig):
// the host formats the object (sorted keys, 2-space indent, Python floats) and adds nothing.
#include <string>

#include "model.h"
#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/speculators_config.h"

namespace speculators {
namespace myalgo {

Json MyAlgoConfig::to_json() const {
  // One greedy proposal of block_size tokens: vLLM reads speculative_tokens as
  // num_speculative_tokens.
  const SpeculatorsConfig speculators_config{"myalgo", block_size, verifier_architectures, verifier_name_or_path};
  return Json::object({
      {"architectures", Json(std::vector<std::string>{"MyAlgoDraftModel"})},
      {"aux_hidden_state_layer_ids", aux_layer_ids},
      {"block_size", block_size},
      {"draft_vocab_size", draft_vocab_size},
      {"dtype", "bfloat16"},  // the host saves every floating tensor in bf16
      {"speculators_config", speculators_config.to_json()},
      {"speculators_model_type", "myalgo"},
      {"speculators_version", SPECULATORS_VERSION},
      {"tie_word_embeddings", false},
      {"transformer_layer_config", layer_config.to_layer_config_json()},
  });
}

namespace {

const Json& field(const Json& json, const std::string& key, const std::string& origin) {
  if (!json.is_object() || !json.contains(key) || json.at(key).is_null())
    fail_usage(cat(origin, ": missing \"", key, "\""));
  return json.at(key);
}

}  // namespace

MyAlgoConfig MyAlgoConfig::from_json(const Json& json, const std::string& origin) {
  const Json& type = field(json, "speculators_model_type", origin);
  if (!type.is_string() || type.as_string() != "myalgo")
    fail_usage(cat(origin, ": speculators_model_type is ", type.dump(), ", expected \"myalgo\""));
  MyAlgoConfig config;
  config.layer_config = TransformerConfig::from_hf_json(field(json, "transformer_layer_config", origin),
                                                        origin + ": transformer_layer_config");
  config.block_size = field(json, "block_size", origin).as_int();
  config.aux_layer_ids = field(json, "aux_hidden_state_layer_ids", origin).as_int_list();
  config.draft_vocab_size = field(json, "draft_vocab_size", origin).as_int();
  const SpeculatorsConfig block = SpeculatorsConfig::from_config_json(json, origin);
  config.verifier_architectures = block.verifier_architectures;
  config.verifier_name_or_path = block.verifier_name_or_path;
  config.validate(origin);
  return config;
}

void MyAlgoConfig::validate(const std::string& origin) const {
  layer_config.validate(origin + ": transformer_layer_config");
  if (block_size < 1) fail_usage(cat(origin, ": block_size must be >= 1, got ", block_size));
  if (aux_layer_ids.empty()) fail_usage(cat(origin, ": aux_hidden_state_layer_ids is empty"));
  if (draft_vocab_size < 1 || draft_vocab_size > layer_config.vocab_size)
    fail_usage(cat(origin, ": draft_vocab_size must be in [1, ", layer_config.vocab_size, "], got ",
                   draft_vocab_size));
}

}  // namespace myalgo
}  // namespace speculators
