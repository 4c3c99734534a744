// The attention mask of one block of queries in a packed row, shared by the verifier families
// that compute attention in query blocks (verifier_gpt_oss.cpp, verifier_llama4.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace speculators {

// Queries [q0, q1) against keys [0, q1): `allowed` is causal (k <= q), within the query's
// document, and empty for padding queries (document -1); `qi` [Lq, 1] and `ki` [1, S] are the
// query and key indices, for the family's own restrictions (window, chunk).
struct BlockMask {
  torch::Tensor qi, ki, allowed;
};

inline BlockMask causal_document_block(const torch::Tensor& documents, std::int64_t q0, std::int64_t q1) {
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(documents.device());
  BlockMask m;
  m.qi = torch::arange(q0, q1, longs).unsqueeze(1);
  m.ki = torch::arange(0, q1, longs).unsqueeze(0);
  const torch::Tensor qd = documents.slice(0, q0, q1).unsqueeze(1);
  const torch::Tensor kd = documents.slice(0, 0, q1).unsqueeze(0);
  m.allowed = (m.ki <= m.qi).logical_and(qd != -1).logical_and(qd == kd);
  return m;
}

}  // namespace speculators
