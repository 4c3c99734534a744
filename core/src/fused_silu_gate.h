// SiLU·gate of the MLP, silu(gate)·up, on the CPU in fp32: one pass forward over gate and up, and
// one pass backward, instead of silu, its product with up and their gradients as separate
// operators. Used by MLPImpl::forward (components.cpp); tested there against torch::silu in fp64
// (tests/core/components_test.cpp).
#pragma once

#include <torch/torch.h>

namespace speculators {
namespace nn {
namespace fused {

// True when gate and up are fp32 CPU tensors of one shape.
bool silu_gate_fusable(const torch::Tensor& gate, const torch::Tensor& up);

// silu(gate)·up as one autograd node, differentiable in both.
torch::Tensor silu_gate(const torch::Tensor& gate, const torch::Tensor& up);

// The same, written over gate, which must be contiguous and need no gradient; returns gate.
torch::Tensor silu_gate_(const torch::Tensor& gate, const torch::Tensor& up);

}  // namespace fused
}  // namespace nn
}  // namespace speculators
