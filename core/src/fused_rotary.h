// Rotary position embedding as one autograd node on the CPU in fp32: x·cos + rotate_half(x)·sin in
// one pass over x, and its gradient g·cos + rotate_halfᵀ(g·sin) in one pass over g, instead of the
// seven operators forward (two halves, neg, cat, two products, sum) and about as many backward of
// the expression. Used by apply_rotary (components.cpp); tested there against the expression
// (tests/core/components_test.cpp).
#pragma once

#include <torch/torch.h>

namespace speculators {
namespace nn {
namespace fused {

// True when x [B, heads, L, hd] (any strides, hd contiguous) and the tables cos/sin [B, L, hd]
// take the fused path: all fp32 on the CPU, hd even, and no gradient wanted for the tables.
bool rotary_fusable(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// x·cos + rotate_half(x)·sin with cos/sin broadcast over the heads; differentiable in x.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace fused
}  // namespace nn
}  // namespace speculators
