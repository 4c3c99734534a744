// Inference with a trained draft: greedy proposals for speculative decoding (the reference's
// `proposals` entry, greedy chain of `speculative_tokens`). The host runs the verifier with a
// key/value cache and drives one Proposer per sequence:
//
//   prefill:   verifier over the prompt x_0..x_{p-1}  → features F_0..F_{p-1}, its next token y
//              proposer.extend(F_0..F_{p-1}, next_tokens = x_1..x_{p-1}, y)
//   each step: d_1..d_k = proposer.propose(k)
//              verifier over [y, d_1..d_k]  → accepts a leading tokens, then emits its own token
//              proposer.extend(F of [y, d_1..d_a], next_tokens = d_1..d_a, bonus)
//
// Features are the verifier's hidden states at the draft's target_layer_ids(), concatenated in
// that order ([n, A·H]), plus the final layer before the final norm ([n, H]); position i's next
// token is the token at position i + 1. A Proposer keeps its own cache; propose() leaves the
// accepted state as it was.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace speculators {

class Proposer {
 public:
  virtual ~Proposer() = default;

  // Appends n accepted positions: features [n, A·H], last_hidden [n, H], next_tokens [n] (int64,
  // verifier vocabulary).
  virtual void extend(const torch::Tensor& features, const torch::Tensor& last_hidden,
                      const torch::Tensor& next_tokens) = 0;
  // Up to k proposed tokens (verifier vocabulary) following the last next_token; needs at least
  // one accepted position.
  virtual std::vector<std::int64_t> propose(std::int64_t k) = 0;
  // Accepted positions so far.
  virtual std::int64_t length() const = 0;
};

}  // namespace speculators
