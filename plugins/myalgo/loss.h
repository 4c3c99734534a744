// myalgo's training objective and metrics, as a pure function of tensors so that it can be
// read, and tested, without a model around it.
//
// The indexing every multi-token draft has to get right (positions are NOT shifted for myalgo):
//   - at packed position i the draft has seen tokens <= i (through the verifier's features);
//   - the verifier's distribution at position i is its prediction for token i+1;
//   - head j (j = 1..block_size) at position i predicts token i+j, so its target is the
//     verifier's distribution at position i+j-1.
// A pair (i, j) takes part in the loss and the metrics only when the predicted token i+j exists
// in the row, i is not padding, positions i, i+j-1 and i+j belong to the same document, and the
// loss_mask of the predicted token i+j is 1. (EAGLE-3 uses the mask of the input token instead,
// as the reference's shift_batch does; for a multi-token draft the mask of the token being
// predicted is the one that says whether that token is worth learning.)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {
namespace myalgo {

struct HeadLoss {
  torch::Tensor loss;   // scalar, differentiable w.r.t. the head logits
  TensorMap metrics;    // loss_sum/_total, acc_j_sum/_total, full_acc_j_sum/_total (0-d tensors)
};

// head_logits: block_size tensors [L, Vd] (head j = head_logits[j-1]); target_logits: [L, Vd],
// the verifier's logits over the draft vocabulary (no gradient flows into them);
// loss_mask, document_ids: [L] (document -1 = padding).
//
// loss = Σ_j gamma^(j-1) · Σ_i m_ij KL(p_{i+j-1} ‖ q_ij) / (Σ_i m_ij + 1e-5), with p and q
// softmaxes over the draft vocabulary in fp32 (forward KL, the reference's masked
// mean with its 1e-5 guard, one decay factor per head as per TTT step), computed in row chunks.
// m_ij is the SDK's nn::shifted_target_mask(document_ids, loss_mask, j) (the rule above).
HeadLoss multi_head_kl_loss(const std::vector<torch::Tensor>& head_logits, const torch::Tensor& target_logits,
                            const torch::Tensor& loss_mask, const torch::Tensor& document_ids, double gamma);

}  // namespace myalgo
}  // namespace speculators
