// The verifier's tensors a draft copies and freezes: its token embedding, its lm_head (the rows of
// the draft vocabulary) and its final norm, read from a verifier checkpoint directory by the
// reference's name resolution (speculators/utils/loading.py: _resolve_key via
// read_verifier_tensor). Drafts use the head and norm to turn verifier_last_hidden_states into
// target logits, and the head as their own frozen lm_head.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace speculators {

struct VerifierHead {
  torch::Tensor embed_tokens;  // [V, H]
  torch::Tensor lm_head;       // [V, H]; the embedding when the verifier ties its head
  torch::Tensor norm;          // [H], the final norm (model.norm.weight)

  // lm_head rows of the draft vocabulary, in ascending target id: the rows where t2d [V] (bool) is
  // true, every row when t2d is undefined.
  torch::Tensor lm_head_rows(const torch::Tensor& t2d) const;
};

// Reads and checks the three tensors of the verifier in `dir` against hidden_size H and
// vocab_size V. A missing tensor or a wrong shape is an Error(kUsage) naming the directory, the
// tensor, its shape and the one expected (the verifier given does not fit the job).
VerifierHead load_verifier_head(const std::string& dir, std::int64_t hidden_size, std::int64_t vocab_size);

// dst.copy_(src) without recording a gradient, then dst.requires_grad = false: a frozen copy.
void copy_frozen(torch::Tensor& dst, const torch::Tensor& src);

}  // namespace speculators
