// A key/value cache for incremental decoding, one per attention layer: the verifier's cached
// decoder and the drafts' proposers use it from inside an nn::AttentionKernel.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>

namespace speculators {
namespace nn {

struct LayerKvCache {
  torch::Tensor keys;    // [B, nkv, positions, hd], rotary already applied
  torch::Tensor values;  // [B, nkv, positions, hd]

  std::int64_t length() const { return keys.defined() ? keys.size(2) : 0; }
  // Forgets every position at or after `length` (<= length()).
  void truncate(std::int64_t length);
};

// Appends k, v [B, nkv, S, hd] to `cache` and attends q [B, nh, S, hd] over everything cached:
// the S new positions are the last S; each sees the positions up to itself, and only those in
// (t − W, t] when a window W is given. Appending makes new tensors, so a copy of a cache taken
// before the call is unchanged by it.
torch::Tensor attend_with_cache(LayerKvCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, std::optional<std::int64_t> window);

}  // namespace nn
}  // namespace speculators
