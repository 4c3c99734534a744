// Divergences between draft logits and target (verifier) logits over one vocabulary, as the
// reference trains drafts with them (speculators/losses/eager.py, losses/utils.py): kl_div, rkl,
// jsd, ce, tv, nla, lk_hybrid, and JSON-weighted sums of them. Rows are processed in chunks so that
// no [N, V] fp32 softmax lives longer than one chunk, in the forward pass and in the backward pass
// (which recomputes each chunk). Targets never receive a gradient.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace speculators {
namespace nn {

enum class Divergence {
  kKlDiv,           // "kl_div": KL(p || q), p = softmax(targets), q = softmax(logits)
  kReverseKl,       // "rkl": KL(q || p)
  kJensenShannon,   // "jsd": ½KL(p || m) + ½KL(q || m), m = (p + q) / 2
  kCrossEntropy,    // "ce": -log q[argmax(targets)]
  kTotalVariation,  // "tv": 1 - Σ min(p, q)
  kNegLogAccept,    // "nla": -log(max(Σ min(p, q), 1e-5))
  kLkHybrid,        // "lk_hybrid": λ·KL + (1-λ)·TV, λ = exp(-3·stopgrad(Σ min(p, q)))
};

// "kl_div" <-> Divergence; the names are the reference's --loss-fn names.
const char* divergence_name(Divergence kind);
// Throws Error listing the valid names; `where` names the option or file at fault.
Divergence divergence_from_name(const std::string& name, const std::string& where = "loss_fn");
std::vector<std::string> divergence_names();

struct LossTerm {
  std::string name;  // as written ("kl_div", "tv", ...)
  Divergence kind = Divergence::kKlDiv;
  double weight = 1.0;
};

// A parsed --loss-fn: one name, or a JSON object of name -> weight (weights not normalized).
struct LossSpec {
  std::vector<LossTerm> terms;
  std::string text;  // the original spelling
  // Per-term values are reported only for more than one term (losses/utils.py: compound_loss).
  bool reports_terms() const { return terms.size() > 1; }
};

// Parses "kl_div" or '{"ce": 0.1, "tv": 0.9}'. Errors name `where` (e.g. "--loss-fn") and the
// offending text, term or weight.
LossSpec parse_loss_fn(const std::string& text, const std::string& where = "loss_fn");

// Per-row divergences [T, N] in fp32 for T = kinds.size() terms, over logits/targets [N, V].
// Differentiable w.r.t. `logits` only; the forward keeps no [N, V] intermediate and the backward
// recomputes one chunk of `chunk_rows` rows at a time.
torch::Tensor rowwise_divergences(const torch::Tensor& logits, const torch::Tensor& target_logits,
                                  const std::vector<Divergence>& kinds, std::int64_t chunk_rows = 1024);

// The same values by the textbook formulas on the whole [N, V] at once (tests, small inputs).
torch::Tensor reference_divergence(const torch::Tensor& logits, const torch::Tensor& target_logits,
                                   Divergence kind);

struct MaskedLoss {
  torch::Tensor loss;                          // scalar, with grad: Σ_t w_t · term_t
  std::map<std::string, torch::Tensor> terms;  // name -> unweighted term (detached); empty for one term
};

// Reduction of speculators/losses/utils.py: loss_function, compound_loss: term = Σ_i mask_i · ℓ_i ·
// decay / (Σ_i mask_i + 1e-5), loss = Σ w · term. logits/targets [N, V], mask [N] (any numeric or
// bool type); decay is γ^k for TTT step k.
MaskedLoss masked_divergence(const torch::Tensor& logits, const torch::Tensor& target_logits,
                             const torch::Tensor& mask, const LossSpec& spec, double decay = 1.0,
                             std::int64_t chunk_rows = 1024);

}  // namespace nn
}  // namespace speculators
