// The attention's softmax rows in the forward without autograd on the CPU in fp32 (the verifier's
// forward, for hidden-state generation and the online source): the mask, max, exponent and sum in
// one pass over each row instead of one pass per element-wise operator. Used by components.cpp and
// tested there against the dense mask (tests/core/components_test.cpp, the no-grad attention).
#pragma once

#include <torch/torch.h>

namespace speculators {
namespace nn {
namespace fused {

// True when `t` is a contiguous fp32 CPU tensor and no gradient is recorded for it.
bool inference_fusable(const torch::Tensor& t);

// Softmax rows of attention scores, unnormalised and in place. For row r of p [R, S] the visible
// keys are the first S − causal_queries + (r mod causal_queries) + 1 when causal_queries > 0 (the
// last causal_queries keys are causal to the rows' queries, rows cycling through them), or all S
// when it is 0 (hidden entries are then −inf already). The visible entries become exp(x − max),
// with max over the visible entries of the row, and the others 0. Returns the row sums [R] (fp32):
// the softmax's denominators. Every row must see at least one finite score.
torch::Tensor exp_rows_(const torch::Tensor& p, std::int64_t causal_queries);

}  // namespace fused
}  // namespace nn
}  // namespace speculators
