// The attention mask of a packed row, computed by query blocks: a query sees the keys of its own
// document up to itself, within an optional sliding window (key k visible to query q iff
// q − W < k ≤ q), and always its own key, so a padding query (document −1) sees only itself
// (speculators/models/eagle3/attention.py: create_combined_mask_mod). The verifier's attention
// (nn::document_causal_attention) and EAGLE-3's training-time-test attention both read the mask
// from here, one block of queries at a time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace speculators {
namespace nn {

// The document ids as the functions below read them: int64, contiguous, on the CPU.
torch::Tensor document_ids_on_cpu(const torch::Tensor& document_ids);

// For every query q, the first key it may see: q itself on padding, else the later of its
// document's first index and q − W + 1. Exact for any layout of document_ids [L].
std::vector<std::int64_t> first_visible_keys(const torch::Tensor& document_ids, std::optional<std::int64_t> window);

// Queries [q0, q1) need the keys [k0, q1) only.
struct QueryBlock {
  std::int64_t q0, q1, k0;
};

// The queries of document_ids [L] in blocks of `rows` (the last may be shorter), each with the
// first key any of its queries may see.
std::vector<QueryBlock> query_blocks(const torch::Tensor& document_ids, std::optional<std::int64_t> window,
                                     std::int64_t rows);

// [q1 − q0, k1 − k0] bool on `device`, true where query q may not see key k by the rule above.
// `ids` comes from document_ids_on_cpu; the block is written by one loop over it.
torch::Tensor hidden_keys(const torch::Tensor& ids, std::int64_t q0, std::int64_t q1, std::int64_t k0, std::int64_t k1,
                          std::optional<std::int64_t> window, const torch::Device& device);

}  // namespace nn
}  // namespace speculators
