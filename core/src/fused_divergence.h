// Fused row kernels for the divergences that have a closed form (KL(p‖q) and CE against argmax p):
// each reads a row of draft logits once from memory (the row stays in cache between its max and its
// sum) instead of one pass per element-wise operator, and the target side (softmax, Σ p log p,
// argmax, per-row sums) is computed once per row and reused by every TTT step that reads the row. Used by
// losses.cpp; tested through the public functions in speculators/nn/losses.h against the unfused
// operators.
#pragma once

#include <torch/torch.h>

namespace speculators {
namespace nn {
namespace fused {

// For each row t of fp32 `target_logits` [N, V] (contiguous): probs = softmax(t) (fp32 [N, V]) and
// stats (fp64 [N, 3]) = (log Σ exp(t), Σ p·t, Σ p); terms with p = 0 count 0.
void target_rows(const torch::Tensor& target_logits, torch::Tensor& probs, torch::Tensor& stats);

// For each row x of fp32 `logits` [N, V] (contiguous): lse = log Σ exp(x); when `kl` is given,
// kl = Σ p (log p − log q) = (Σ p·t − Σ p·x) + Σ p·(lse − log Σ exp(t)), written so that equal rows
// give exactly 0 (Σ p·x is summed exactly as Σ p·t was); when `ce` is given, ce = lse − x[label].
// `lse`, `kl`, `ce` are [N] fp32 outputs.
void forward_rows(const torch::Tensor& logits, const torch::Tensor& probs, const torch::Tensor& stats,
                  const torch::Tensor& label, torch::Tensor& lse, torch::Tensor* kl, torch::Tensor* ce);

// d/dx of Σ_i g_kl,i·kl_i + g_ce,i·ce_i: (g_kl + g_ce)·softmax(x) − g_kl·p − g_ce·onehot(label), from the
// saved lse, into fp32 `grad` [N, V]. An undefined g_* counts as zero.
void backward_rows(const torch::Tensor& logits, const torch::Tensor& probs, const torch::Tensor& label,
                   const torch::Tensor& lse, const torch::Tensor& g_kl, const torch::Tensor& g_ce, torch::Tensor& grad);

}  // namespace fused
}  // namespace nn
}  // namespace speculators
