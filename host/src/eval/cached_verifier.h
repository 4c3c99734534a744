// The verifier run incrementally with a key/value cache per layer: prefill, then a few positions at
// a time, with the residual streams of requested layers (ids as in speculators/models/utils.py:
// resolve_target_layer_ids) and a truncate that drops rejected positions. It goes through the
// verifier's own decoder-layer modules; the cache lives in the attention kernel, which sees the new
// positions' rotated keys and values and attends over everything cached so far. Used by sampling
// and by speculative decoding.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "speculators/nn/kv_cache.h"
#include "speculators/verifier.h"

namespace speculators {

class CachedVerifier {
 public:
  // layer_ids: residual streams to return, id k = after k decoder layers (0..num_hidden_layers).
  CachedVerifier(VerifierModelImpl& verifier, std::vector<std::int64_t> layer_ids = {});

  struct Output {
    torch::Tensor logits;                      // [B, S, V], or [B, V] for the last position only
    std::vector<torch::Tensor> hidden_states;  // one [B, S, H] per requested id, in order
  };
  // tokens [B, S] at positions [length(), length() + S).
  Output step(const torch::Tensor& tokens, bool last_logits_only = false);
  // Forgets every position at or after `length`.
  void truncate(std::int64_t length);
  std::int64_t length() const { return caches_.empty() ? 0 : caches_[0].length(); }

 private:
  VerifierModelImpl& verifier_;
  std::vector<std::int64_t> layer_ids_;
  nn::RotaryEmbedding rope_;
  std::vector<nn::LayerKvCache> caches_;  // per layer
};

}  // namespace speculators
