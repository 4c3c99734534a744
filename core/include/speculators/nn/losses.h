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

// The target side of the divergences for N rows, computed once and reused by every call that reads
// the rows (EAGLE-3's TTT steps read row i + k at step k). When every term has a closed-form
// gradient (kl_div, ce) and the tensors are on the CPU, it holds the fp32 softmax of each row and
// three sums per row, and the divergences run as fused row kernels (one pass over a row of draft
// logits for the values, one for the gradient); otherwise only the logits, for the general path.
struct TargetDistribution {
  torch::Tensor logits;       // [N, V] as given, detached
  torch::Tensor probs;        // [N, V] fp32 softmax(logits); fused path only
  torch::Tensor stats;        // [N, 3] fp64 (log Σ exp(logits), Σ p·logits, Σ p); fused path only
  torch::Tensor label;        // [N] int64 argmax(logits)
  bool fused() const { return probs.defined(); }
  std::int64_t rows() const { return logits.size(0); }
  // Rows [begin, end) as views.
  TargetDistribution slice(std::int64_t begin, std::int64_t end) const;
};

// Builds the target side for the loss terms `kinds` (the fused form when all of them allow it).
TargetDistribution target_distribution(const torch::Tensor& target_logits, const std::vector<Divergence>& kinds);
TargetDistribution target_distribution(const torch::Tensor& target_logits, const LossSpec& spec);

// Per-row divergences [T, N] in fp32 for T = kinds.size() terms, over logits/targets [N, V].
// Differentiable w.r.t. `logits` only; the forward keeps no [N, V] intermediate and the backward
// recomputes one chunk of `chunk_rows` rows at a time.
torch::Tensor rowwise_divergences(const torch::Tensor& logits, const torch::Tensor& target_logits,
                                  const std::vector<Divergence>& kinds, std::int64_t chunk_rows = 1024);
// The same against a prepared target side (fused row kernels when `targets.fused()`).
torch::Tensor rowwise_divergences(const torch::Tensor& logits, const TargetDistribution& targets,
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
MaskedLoss masked_divergence(const torch::Tensor& logits, const TargetDistribution& targets,
                             const torch::Tensor& mask, const LossSpec& spec, double decay = 1.0,
                             std::int64_t chunk_rows = 1024);
// The same loss over the first N = targets.rows() rows of `logits` [M, V] (M >= N; mask [N]): the
// other rows are not scored and their gradient is zero. A TTT step scores a prefix of its logits;
// slicing before the call would have autograd build a zeroed [M, V] gradient and copy into it.
MaskedLoss masked_prefix_divergence(const torch::Tensor& logits, const TargetDistribution& targets,
                                    const torch::Tensor& mask, const LossSpec& spec, double decay = 1.0,
                                    std::int64_t chunk_rows = 1024);

}  // namespace nn
}  // namespace speculators
