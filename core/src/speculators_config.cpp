// The speculators_config block (speculators/speculators_config.h).
#include "speculators/speculators_config.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

Json SpeculatorsConfig::to_json() const {
  Json method = Json::object({{"accept_tolerance", 0.0},
                              {"proposal_type", "greedy"},
                              {"speculative_tokens", speculative_tokens},
                              {"verifier_accept_k", 1}});
  Json verifier = Json::object({{"architectures", Json(verifier_architectures)},
                                {"name_or_path", verifier_name_or_path.empty() ? Json() : Json(verifier_name_or_path)}});
  return Json::object({{"algorithm", algorithm},
                       {"default_proposal_method", "greedy"},
                       {"proposal_methods", Json(Json::Array{method})},
                       {"verifier", verifier}});
}

SpeculatorsConfig SpeculatorsConfig::from_config_json(const Json& config, const std::string& origin,
                                                      const SpeculatorsConfig& defaults) {
  SpeculatorsConfig out = defaults;
  if (!config.is_object()) fail_usage(cat(origin, ": expected a JSON object"));
  const Json block = config.get("speculators_config", Json());
  if (block.is_null()) return out;
  const std::string where = origin + ": speculators_config";
  if (!block.is_object()) fail_usage(cat(where, " must be an object, got ", block.dump()));
  const Json algorithm = block.get("algorithm", Json());
  if (algorithm.is_string()) {
    out.algorithm = algorithm.as_string();
  } else if (!algorithm.is_null()) {
    fail_usage(cat(where, ".algorithm must be a string, got ", algorithm.dump()));
  }
  const Json methods = block.get("proposal_methods", Json());
  if (!methods.is_null()) {
    if (!methods.is_array()) fail_usage(cat(where, ".proposal_methods must be a list, got ", methods.dump()));
    if (methods.size() > 0) {
      const Json tokens = methods.as_array()[0].get("speculative_tokens", Json());
      if (tokens.is_int()) {
        out.speculative_tokens = tokens.as_int();
      } else if (!tokens.is_null()) {
        fail_usage(cat(where, ".proposal_methods[0].speculative_tokens must be an integer, got ", tokens.dump()));
      }
    }
  }
  const Json verifier = block.get("verifier", Json());
  if (verifier.is_null()) return out;
  if (!verifier.is_object()) fail_usage(cat(where, ".verifier must be an object, got ", verifier.dump()));
  const Json name = verifier.get("name_or_path", Json());
  if (name.is_string()) {
    out.verifier_name_or_path = name.as_string();
  } else if (!name.is_null()) {
    fail_usage(cat(where, ".verifier.name_or_path must be a string or null, got ", name.dump()));
  }
  const Json archs = verifier.get("architectures", Json());
  if (archs.is_array()) {
    out.verifier_architectures = archs.as_string_list();
  } else if (!archs.is_null()) {
    fail_usage(cat(where, ".verifier.architectures must be a list of strings, got ", archs.dump()));
  }
  return out;
}

SpeculatorsConfig SpeculatorsConfig::from_config_json(const Json& config, const std::string& origin) {
  return from_config_json(config, origin, SpeculatorsConfig{});
}

}  // namespace speculators
