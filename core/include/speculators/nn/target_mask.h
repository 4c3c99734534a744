// Which positions of a packed row may be scored against a target `shift` positions ahead. In a
// packed row several documents sit side by side (document_ids, -1 on padding), so a draft that
// predicts token i + shift from position i must not pair i with a token of the next document,
// nor train on a token the loss mask excludes.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace speculators {
namespace nn {

// valid [max(L - shift, 0)] bool, over positions i = 0 .. L-shift-1: position i is not padding
// (document_ids[i] != -1), positions i .. i+shift all belong to the same document, and
// loss_mask[i + shift] != 0 (the mask of the token predicted; an undefined loss_mask counts every
// token). document_ids and loss_mask are [L] (a [1, L] row is accepted); shift >= 0. Positions
// i >= L - shift never have a target inside the row.
torch::Tensor shifted_target_mask(const torch::Tensor& document_ids, const torch::Tensor& loss_mask,
                                  std::int64_t shift);

}  // namespace nn
}  // namespace speculators
