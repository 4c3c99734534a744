// Greedy decoding with and without a draft (speculative decoding, greedy acceptance). With a
// draft, each step proposes k tokens, the verifier scores [last token, d_1..d_k] in one cached
// forward, accepts the longest prefix that equals its own greedy choices and adds its own next
// token (the bonus), so the output is exactly the verifier's greedy output.
#pragma once

#include <cstdint>
#include <vector>

#include "speculators/proposal.h"
#include "speculators/verifier.h"

namespace speculators {

struct GreedyResult {
  std::vector<std::int64_t> tokens;  // the new tokens, max_new of them
  double seconds = 0;
};

// Plain greedy decoding with the key/value cache, one token per verifier call.
GreedyResult greedy_decode(VerifierModelImpl& verifier, const std::vector<std::int64_t>& prompt,
                           std::int64_t max_new);

struct SpeculativeResult {
  std::vector<std::int64_t> tokens;    // the new tokens, max_new of them
  std::int64_t steps = 0;              // verifier calls after the prefill
  std::vector<std::int64_t> accepted;  // accepted[a] = steps that accepted exactly a drafted tokens
  std::int64_t emitted = 0;            // tokens emitted by those steps (accepted + bonus)
  double seconds = 0;
};

// `aux_layer_ids`: the draft's target_layer_ids(); the proposer also gets the final layer.
SpeculativeResult speculative_decode(VerifierModelImpl& verifier, Proposer& proposer,
                                     const std::vector<std::int64_t>& aux_layer_ids,
                                     const std::vector<std::int64_t>& prompt, std::int64_t max_new,
                                     std::int64_t k);

}  // namespace speculators
