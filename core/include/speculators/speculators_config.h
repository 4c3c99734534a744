// The `speculators_config` block of a draft's config.json (speculators/config.py:
// SpeculatorsConfig, with one GreedyTokenProposalConfig): the algorithm, one greedy proposal
// method of `speculative_tokens` tokens (vLLM reads it as num_speculative_tokens; speculators-eval
// as its default k), and the verifier the draft was trained for. Every draft writes it the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

struct SpeculatorsConfig {
  std::string algorithm;                         // = speculators_model_type
  std::int64_t speculative_tokens = 1;           // tokens proposed per step
  std::vector<std::string> verifier_architectures;
  std::string verifier_name_or_path;             // empty is written as null

  // {"algorithm", "default_proposal_method": "greedy", "proposal_methods": [{"accept_tolerance": 0.0,
  // "proposal_type": "greedy", "speculative_tokens", "verifier_accept_k": 1}], "verifier":
  // {"architectures", "name_or_path"}}.
  Json to_json() const;
  // Reads the block of a whole config.json object (its "speculators_config" key). A file without
  // the block, or without a field, keeps the value of `defaults`; a field of the wrong type is an
  // Error(kUsage) naming `origin` and the key.
  static SpeculatorsConfig from_config_json(const Json& config, const std::string& origin,
                                            const SpeculatorsConfig& defaults);
  static SpeculatorsConfig from_config_json(const Json& config, const std::string& origin);
};

}  // namespace speculators
