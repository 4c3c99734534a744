// EAGLE-3 training-time-test attention (speculators/models/eagle3/attention.py). At TTT step k a
// query sees the step-0 keys under the causal + same-document (+ sliding-window) rule, plus its
// own position's key from every step 1..k. Two implementations of that one predicate:
// - ttt_attention: the step-0 block in query chunks (each chunk reads only the key range it may
//   see) with per-row log-sum-exp, merged with the k diagonal scores through log-sum-exp; a
//   custom autograd function saves the output and each row's log-sum-exp and recomputes the
//   chunk's probabilities in backward (the flash-attention backward), so nothing [L, (k+1)·L] —
//   mask or scores — ever exists, and saved state is O(L).
// - dense_ttt_attention: the literal [L, (k+1)·L] mask; tests compare the two.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace speculators {
namespace eagle3 {

// One layer's keys and values, one block per TTT step (block s was computed at step s, with
// rotary positions shifted by s).
struct TttCache {
  std::vector<torch::Tensor> keys;    // each [B, nkv, L, hd]
  std::vector<torch::Tensor> values;  // each [B, nkv, L, hd]
};

// The create_combined_mask_mod predicate as a bool matrix [L, (step+1)·L]; document_ids [L]
// (-1 = padding).
// allowed(q, kv) = [kv < L ∧ q ≥ kv ∧ doc[q] ≠ -1 ∧ doc[q] = doc[kv] ∧ (no window ∨ kv > q - W)]
//                  ∨ [kv mod L = q].
torch::Tensor ttt_mask(const torch::Tensor& document_ids, std::int64_t step,
                       std::optional<std::int64_t> window);

// Attention of q [B, nh, L, hd] over the keys/values of blocks 0..step (step = keys.size() - 1)
// using the dense mask. Scale hd^-0.5, softmax in fp32; returns q's dtype. Tests only.
torch::Tensor dense_ttt_attention(const torch::Tensor& q, const std::vector<torch::Tensor>& keys,
                                  const std::vector<torch::Tensor>& values,
                                  const torch::Tensor& document_ids, std::optional<std::int64_t> window);

// The same result without the dense mask; `chunk` query rows at a time.
torch::Tensor ttt_attention(const torch::Tensor& q, const std::vector<torch::Tensor>& keys,
                            const std::vector<torch::Tensor>& values, const torch::Tensor& document_ids,
                            std::optional<std::int64_t> window, std::int64_t chunk = 256);

}  // namespace eagle3
}  // namespace speculators
