// RMSNorm as one autograd node on the CPU in fp32: the forward reads each row once for its mean
// square and once to scale it; the backward writes the input's gradient in one pass per row, from
// the saved input and per-row 1/rms, instead of the ~6 operators forward and ~10 backward of
// LlamaRMSNorm's expression. Used by RMSNormImpl::forward (components.cpp) for contiguous fp32 CPU
// inputs; tested there against the operator expression (tests/core/components_test.cpp).
#pragma once

#include <torch/torch.h>

namespace speculators {
namespace nn {
namespace fused {

// True when `x` and `weight` take the fused path: both fp32 on the CPU, weight [x.size(-1)].
bool rms_norm_fusable(const torch::Tensor& x, const torch::Tensor& weight);

// weight * (x * rsqrt(mean(x^2, -1) + eps)), differentiable in x and weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace fused
}  // namespace nn
}  // namespace speculators
