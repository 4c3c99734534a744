// Chunked divergences between draft and target logits (speculators/losses/eager.py). The forward
// pass computes per-row values chunk by chunk without recording a graph; the backward pass
// recomputes one chunk at a time under autograd and pulls its gradient out, so peak extra memory is
// one chunk's [C, V] fp32 intermediates instead of the whole [N, V] (the reference's fused kernels
// make the same trade: recompute in backward, never pin the softmaxes). KL and CE against a
// prepared TargetDistribution run as the fused row kernels of fused_divergence.cpp instead.
#include "speculators/nn/losses.h"

#include <algorithm>
#include <cmath>

#include "fused_divergence.h"

#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"

namespace speculators {
namespace nn {
namespace {

constexpr double kEps = 1e-5;       // nla clamp and reduction denominator (losses/utils.py)
constexpr double kLkEta = 3.0;      // lk_hybrid: λ = exp(-3·stopgrad(overlap))

struct NamedDivergence {
  const char* name;
  Divergence kind;
};
constexpr NamedDivergence kDivergences[] = {
    {"kl_div", Divergence::kKlDiv},          {"rkl", Divergence::kReverseKl},
    {"jsd", Divergence::kJensenShannon},     {"ce", Divergence::kCrossEntropy},
    {"tv", Divergence::kTotalVariation},     {"nla", Divergence::kNegLogAccept},
    {"lk_hybrid", Divergence::kLkHybrid},
};

std::string joined_names() {
  std::string out;
  for (const auto& d : kDivergences) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// Σ_v exp(log_a) · (log_a − log_b) with 0·(−inf) read as 0, i.e. KL(a || b) from log-probs.
torch::Tensor kl_from_logs(const torch::Tensor& log_a, const torch::Tensor& log_b) {
  auto a = log_a.exp();
  return torch::where(a > 0, a * (log_a - log_b), at::Scalar(0.0)).sum(-1);
}

// Per-row values [T, C] of one chunk; `logits` may require grad, `targets` never does.
torch::Tensor chunk_divergences(const torch::Tensor& logits, const torch::Tensor& targets,
                                const std::vector<Divergence>& kinds) {
  auto logq = torch::log_softmax(logits.to(torch::kFloat), -1);
  auto logp = torch::log_softmax(targets.to(torch::kFloat), -1);
  torch::Tensor overlap;  // Σ min(p, q), shared by tv / nla / lk_hybrid
  auto get_overlap = [&]() {
    if (!overlap.defined()) overlap = torch::minimum(logp.exp(), logq.exp()).sum(-1);
    return overlap;
  };
  std::vector<torch::Tensor> rows;
  rows.reserve(kinds.size());
  for (Divergence kind : kinds) {
    switch (kind) {
      case Divergence::kKlDiv:
        rows.push_back(kl_from_logs(logp, logq));
        break;
      case Divergence::kReverseKl:
        rows.push_back(kl_from_logs(logq, logp));
        break;
      case Divergence::kJensenShannon: {
        auto logm = torch::logaddexp(logq, logp) - std::log(2.0);
        rows.push_back(0.5 * (kl_from_logs(logp, logm) + kl_from_logs(logq, logm)));
        break;
      }
      case Divergence::kCrossEntropy: {
        auto label = targets.argmax(-1, /*keepdim=*/true);
        rows.push_back(-logq.gather(-1, label).squeeze(-1));
        break;
      }
      case Divergence::kTotalVariation:
        rows.push_back(1.0 - get_overlap());
        break;
      case Divergence::kNegLogAccept:
        rows.push_back(-torch::log(get_overlap().clamp_min(kEps)));
        break;
      case Divergence::kLkHybrid: {
        auto tv = 1.0 - get_overlap();
        auto lambda = torch::exp(-kLkEta * get_overlap().detach());
        rows.push_back(lambda * kl_from_logs(logp, logq) + (1.0 - lambda) * tv);
        break;
      }
    }
  }
  return torch::stack(rows, 0);
}

std::vector<Divergence> kinds_from_ints(const std::vector<std::int64_t>& ints) {
  std::vector<Divergence> kinds;
  for (auto v : ints) kinds.push_back(static_cast<Divergence>(v));
  return kinds;
}

// d/dlogits of Σ_t g_t·ℓ_t for the terms with a closed form (KL(p‖q): q − p; CE: q − onehot),
// computed straight from the chunk instead of through autograd. Undefined when a term has none.
torch::Tensor closed_form_grad(const torch::Tensor& logits, const torch::Tensor& targets,
                               const std::vector<Divergence>& kinds, const torch::Tensor& grad_values) {
  torch::Tensor p_weighted;  // Σ_t g_t · (target distribution of term t)
  torch::Tensor g_total;     // Σ_t g_t, per row
  for (std::size_t t = 0; t < kinds.size(); ++t) {
    const auto g = grad_values[static_cast<std::int64_t>(t)].to(torch::kFloat).unsqueeze(-1);  // [C, 1]
    torch::Tensor p;
    if (kinds[t] == Divergence::kKlDiv) {
      p = torch::softmax(targets.to(torch::kFloat), -1) * g;
    } else if (kinds[t] == Divergence::kCrossEntropy) {
      p = torch::zeros(targets.sizes(), targets.options().dtype(torch::kFloat))
              .scatter_(-1, targets.argmax(-1, /*keepdim=*/true), g);
    } else {
      return {};
    }
    p_weighted = p_weighted.defined() ? p_weighted + p : p;
    g_total = g_total.defined() ? g_total + g : g;
  }
  auto q = torch::softmax(logits.to(torch::kFloat), -1);
  return (q.mul_(g_total).sub_(p_weighted)).to(logits.scalar_type());
}

class ChunkedDivergenceFunction : public torch::autograd::Function<ChunkedDivergenceFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets, std::vector<std::int64_t> kind_ids,
                               std::int64_t chunk) {
    ctx->save_for_backward({logits, targets});
    ctx->saved_data["kinds"] = kind_ids;
    ctx->saved_data["chunk"] = chunk;
    const auto kinds = kinds_from_ints(kind_ids);
    const std::int64_t n = logits.size(0);
    auto out = torch::empty({static_cast<std::int64_t>(kinds.size()), n},
                            logits.options().dtype(torch::kFloat));
    torch::NoGradGuard no_grad;
    for (std::int64_t begin = 0; begin < n; begin += chunk) {
      const std::int64_t end = std::min(n, begin + chunk);
      out.slice(1, begin, end).copy_(
          chunk_divergences(logits.slice(0, begin, end), targets.slice(0, begin, end), kinds));
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    const auto& targets = saved[1];
    const auto kinds = kinds_from_ints(ctx->saved_data["kinds"].toIntVector());
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto& grad_values = grad_outputs[0];  // [T, N]
    auto grad_logits = torch::empty_like(logits);
    const std::int64_t n = logits.size(0);
    for (std::int64_t begin = 0; begin < n; begin += chunk) {
      const std::int64_t end = std::min(n, begin + chunk);
      auto grad_chunk = grad_values.slice(1, begin, end);
      // Rows outside the loss mask get zero gradient; skip chunks made only of them.
      if (!grad_chunk.ne(0).any().item<bool>()) {
        grad_logits.slice(0, begin, end).zero_();
        continue;
      }
      auto closed = closed_form_grad(logits.slice(0, begin, end), targets.slice(0, begin, end), kinds, grad_chunk);
      if (closed.defined()) {
        grad_logits.slice(0, begin, end).copy_(closed);
        continue;
      }
      torch::AutoGradMode enable_grad(true);
      auto leaf = logits.slice(0, begin, end).detach().requires_grad_(true);
      auto values = chunk_divergences(leaf, targets.slice(0, begin, end).detach(), kinds);
      auto grads = torch::autograd::grad({values}, {leaf}, {grad_chunk.to(values.dtype())});
      grad_logits.slice(0, begin, end).copy_(grads[0]);
    }
    return {grad_logits, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

bool has_closed_form(Divergence kind) { return kind == Divergence::kKlDiv || kind == Divergence::kCrossEntropy; }

// KL / CE rows against a prepared target side, by the fused row kernels: the forward keeps each
// row's log-sum-exp, the backward writes (g_kl + g_ce)·q − g_kl·p − g_ce·onehot in one pass.
// `logits` may have more rows than the targets: only the first probs.size(0) are scored, and the
// backward writes the whole gradient itself (zero past them) instead of leaving autograd to build
// a zero [M, V] tensor and copy a slice into it.
class FusedDivergenceFunction : public torch::autograd::Function<FusedDivergenceFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& probs, const torch::Tensor& stats, const torch::Tensor& label,
                               std::vector<std::int64_t> kind_ids, std::int64_t chunk) {
    const std::int64_t n = probs.size(0);
    const auto fopts = logits.options().dtype(torch::kFloat);
    auto out = torch::empty({static_cast<std::int64_t>(kind_ids.size()), n}, fopts);
    auto lse = torch::empty({n}, fopts);
    torch::NoGradGuard no_grad;
    for (std::int64_t begin = 0; begin < n; begin += chunk) {
      const std::int64_t end = std::min(n, begin + chunk);
      const auto x = logits.slice(0, begin, end).to(torch::kFloat).contiguous();
      torch::Tensor kl, ce;
      for (std::size_t t = 0; t < kind_ids.size(); ++t) {
        auto row = out[static_cast<std::int64_t>(t)].slice(0, begin, end);
        (static_cast<Divergence>(kind_ids[t]) == Divergence::kKlDiv ? kl : ce) = row;
      }
      auto lse_chunk = lse.slice(0, begin, end);
      fused::forward_rows(x, probs.slice(0, begin, end), stats.slice(0, begin, end), label.slice(0, begin, end),
                          lse_chunk, kl.defined() ? &kl : nullptr, ce.defined() ? &ce : nullptr);
    }
    // A term named twice gets its values copied from the first.
    for (std::size_t t = 1; t < kind_ids.size(); ++t) {
      for (std::size_t u = 0; u < t; ++u) {
        if (kind_ids[u] == kind_ids[t]) out[static_cast<std::int64_t>(t)].copy_(out[static_cast<std::int64_t>(u)]);
      }
    }
    ctx->save_for_backward({logits, probs, label, lse});
    ctx->saved_data["kinds"] = kind_ids;
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    const auto kind_ids = ctx->saved_data["kinds"].toIntVector();
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto grad_values = grad_outputs[0].to(torch::kFloat);  // [T, N]
    torch::Tensor g_kl, g_ce;
    for (std::size_t t = 0; t < kind_ids.size(); ++t) {
      auto& g = static_cast<Divergence>(kind_ids[t]) == Divergence::kKlDiv ? g_kl : g_ce;
      const auto row = grad_values[static_cast<std::int64_t>(t)];
      g = g.defined() ? g + row : row;
    }
    const std::int64_t n = saved[1].size(0);
    const bool direct = logits.scalar_type() == torch::kFloat;
    auto grad_logits = torch::empty({logits.size(0), logits.size(1)}, logits.options());
    grad_logits.slice(0, n, logits.size(0)).zero_();
    for (std::int64_t begin = 0; begin < n; begin += chunk) {
      const std::int64_t end = std::min(n, begin + chunk);
      const auto x = logits.slice(0, begin, end).to(torch::kFloat).contiguous();
      auto g = direct ? grad_logits.slice(0, begin, end) : torch::empty_like(x);
      fused::backward_rows(x, saved[1].slice(0, begin, end), saved[2].slice(0, begin, end),
                           saved[3].slice(0, begin, end), g_kl.defined() ? g_kl.slice(0, begin, end) : g_kl,
                           g_ce.defined() ? g_ce.slice(0, begin, end) : g_ce, g);
      if (!direct) grad_logits.slice(0, begin, end).copy_(g);
    }
    return {grad_logits, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_pair(const torch::Tensor& logits, const torch::Tensor& target_logits, const char* what) {
  if (logits.dim() != 2 || !target_logits.defined() || target_logits.sizes() != logits.sizes()) {
    fail(cat(what, ": logits and target_logits must both be [N, V] with equal shapes; got ",
             logits.sizes(), " and ", target_logits.defined() ? target_logits.sizes() : c10::IntArrayRef{}));
  }
}

}  // namespace

const char* divergence_name(Divergence kind) {
  for (const auto& d : kDivergences) {
    if (d.kind == kind) return d.name;
  }
  return "?";
}

Divergence divergence_from_name(const std::string& name, const std::string& where) {
  for (const auto& d : kDivergences) {
    if (name == d.name) return d.kind;
  }
  fail_usage(cat(where, ": unknown loss function '", name, "'; choose from ", joined_names()));
}

std::vector<std::string> divergence_names() {
  std::vector<std::string> names;
  for (const auto& d : kDivergences) names.emplace_back(d.name);
  return names;
}

LossSpec parse_loss_fn(const std::string& text, const std::string& where) {
  LossSpec spec;
  spec.text = text;
  for (const auto& d : kDivergences) {
    if (text == d.name) {
      spec.terms.push_back({d.name, d.kind, 1.0});
      return spec;
    }
  }
  const std::string example = "e.g. '{\"ce\": 0.1, \"tv\": 0.9}'";
  Json parsed;
  try {
    parsed = Json::parse(text, where);
  } catch (const Error& e) {
    // The value may be anything a user typed (or 80 kB of brackets): quote its start only, and
    // say why it is not JSON when it looks like JSON.
    const std::string shown = text.size() > 80 ? text.substr(0, 80) + "..." : text;
    const std::string why = text.find_first_not_of(" \t") != std::string::npos &&
                                    text[text.find_first_not_of(" \t")] == '{'
                                ? cat(" (not a valid JSON object: ", std::string(e.what()).substr(0, 200), ")")
                                : std::string();
    fail_usage(cat(where, ": unknown loss function '", shown, "'", why, "; pass one of ", joined_names(),
                   " or a JSON object of name -> weight, ", example));
  }
  if (!parsed.is_object() || parsed.size() == 0) {
    fail_usage(cat(where, ": a loss config must be a non-empty JSON object of name -> weight, ", example,
                   "; got ", text));
  }
  for (const auto& [name, weight] : parsed.as_object()) {
    const Divergence kind = divergence_from_name(name, cat(where, " (in ", text, ")"));
    if (!weight.is_number()) {
      fail_usage(cat(where, ": the weight of '", name, "' must be a number, got ", weight.type_name(),
                     " in ", text));
    }
    spec.terms.push_back({name, kind, weight.as_double()});
  }
  return spec;
}

torch::Tensor rowwise_divergences(const torch::Tensor& logits, const torch::Tensor& target_logits,
                                  const std::vector<Divergence>& kinds, std::int64_t chunk_rows) {
  check_pair(logits, target_logits, "rowwise_divergences");
  if (kinds.empty()) fail("rowwise_divergences: at least one divergence is required");
  if (chunk_rows < 1) fail(cat("rowwise_divergences: chunk_rows must be >= 1, got ", chunk_rows));
  std::vector<std::int64_t> ids;
  for (auto kind : kinds) ids.push_back(static_cast<std::int64_t>(kind));
  return ChunkedDivergenceFunction::apply(logits, target_logits.detach(), ids, chunk_rows);
}

TargetDistribution TargetDistribution::slice(std::int64_t begin, std::int64_t end) const {
  TargetDistribution out;
  out.logits = logits.slice(0, begin, end);
  out.label = label.slice(0, begin, end);
  if (fused()) {
    out.probs = probs.slice(0, begin, end);
    out.stats = stats.slice(0, begin, end);
  }
  return out;
}

TargetDistribution target_distribution(const torch::Tensor& target_logits, const std::vector<Divergence>& kinds) {
  if (target_logits.dim() != 2) {
    fail(cat("target_distribution: target_logits must be [N, V]; got ", target_logits.sizes()));
  }
  TargetDistribution out;
  out.logits = target_logits.detach();
  torch::NoGradGuard no_grad;
  out.label = out.logits.argmax(-1);
  const bool fusable = !kinds.empty() && target_logits.device().is_cpu() &&
                       std::all_of(kinds.begin(), kinds.end(), has_closed_form);
  if (fusable) {
    const auto t = out.logits.to(torch::kFloat).contiguous();
    out.probs = torch::empty_like(t);
    out.stats = torch::empty({t.size(0), 3}, t.options().dtype(torch::kDouble));
    fused::target_rows(t, out.probs, out.stats);
  }
  return out;
}

TargetDistribution target_distribution(const torch::Tensor& target_logits, const LossSpec& spec) {
  std::vector<Divergence> kinds;
  for (const auto& term : spec.terms) kinds.push_back(term.kind);
  return target_distribution(target_logits, kinds);
}

namespace {

// rowwise_divergences of the first targets.rows() rows of `logits` (shapes checked by the callers).
torch::Tensor scored_prefix_divergences(const torch::Tensor& logits, const TargetDistribution& targets,
                                        const std::vector<Divergence>& kinds, std::int64_t chunk_rows) {
  if (kinds.empty()) fail("rowwise_divergences: at least one divergence is required");
  if (chunk_rows < 1) fail(cat("rowwise_divergences: chunk_rows must be >= 1, got ", chunk_rows));
  const bool fusable = targets.fused() && logits.device().is_cpu() &&
                       std::all_of(kinds.begin(), kinds.end(), has_closed_form);
  if (!fusable) return rowwise_divergences(logits.slice(0, 0, targets.rows()), targets.logits, kinds, chunk_rows);
  std::vector<std::int64_t> ids;
  for (auto kind : kinds) ids.push_back(static_cast<std::int64_t>(kind));
  return FusedDivergenceFunction::apply(logits, targets.probs, targets.stats, targets.label, ids, chunk_rows);
}

// logits [M, V] with M >= the targets' N rows and the same V.
void check_prefix(const torch::Tensor& logits, const TargetDistribution& targets, const char* what) {
  if (logits.dim() != 2 || !targets.logits.defined() || logits.size(1) != targets.logits.size(1) ||
      logits.size(0) < targets.rows()) {
    fail(cat(what, ": logits must be [M, V] with at least the targets' rows and their V; got ", logits.sizes(),
             " and targets ", targets.logits.defined() ? targets.logits.sizes() : c10::IntArrayRef{}));
  }
}

}  // namespace

torch::Tensor rowwise_divergences(const torch::Tensor& logits, const TargetDistribution& targets,
                                  const std::vector<Divergence>& kinds, std::int64_t chunk_rows) {
  check_pair(logits, targets.logits, "rowwise_divergences");
  return scored_prefix_divergences(logits, targets, kinds, chunk_rows);
}

torch::Tensor reference_divergence(const torch::Tensor& logits, const torch::Tensor& target_logits,
                                   Divergence kind) {
  check_pair(logits, target_logits, "reference_divergence");
  namespace F = torch::nn::functional;
  const auto logq = F::log_softmax(logits, F::LogSoftmaxFuncOptions(-1).dtype(torch::kFloat));
  const auto logp = F::log_softmax(target_logits, F::LogSoftmaxFuncOptions(-1).dtype(torch::kFloat));
  const auto q = logq.exp();
  const auto p = logp.exp();
  const auto overlap = torch::minimum(p, q).sum(-1);
  const auto kl = F::kl_div(logq, p, F::KLDivFuncOptions().reduction(torch::kNone)).sum(-1);
  switch (kind) {
    case Divergence::kKlDiv:
      return kl;
    case Divergence::kReverseKl:
      return F::kl_div(logp, logq, F::KLDivFuncOptions().reduction(torch::kNone).log_target(true)).sum(-1);
    case Divergence::kJensenShannon: {
      const auto logm = torch::log((p + q) / 2);
      auto opts = F::KLDivFuncOptions().reduction(torch::kNone).log_target(true);
      return 0.5 * (F::kl_div(logm, logp, opts).sum(-1) + F::kl_div(logm, logq, opts).sum(-1));
    }
    case Divergence::kCrossEntropy:
      return F::cross_entropy(logits.to(torch::kFloat), target_logits.argmax(-1),
                              F::CrossEntropyFuncOptions().reduction(torch::kNone));
    case Divergence::kTotalVariation:
      return 1.0 - overlap;
    case Divergence::kNegLogAccept:
      return -torch::log(overlap.clamp_min(kEps));
    case Divergence::kLkHybrid: {
      const auto lambda = torch::exp(-kLkEta * overlap.detach());
      return lambda * kl + (1.0 - lambda) * (1.0 - overlap);
    }
  }
  fail("reference_divergence: unknown divergence");
}

namespace {

void check_mask(const torch::Tensor& logits, const torch::Tensor& mask, const LossSpec& spec) {
  if (!mask.defined() || mask.dim() != 1 || mask.size(0) != logits.size(0)) {
    fail(cat("masked_divergence: mask must be [N] with N = ", logits.size(0), " rows"));
  }
  if (spec.terms.empty()) fail("masked_divergence: the loss spec has no terms");
}

std::vector<Divergence> spec_kinds(const LossSpec& spec) {
  std::vector<Divergence> kinds;
  for (const auto& term : spec.terms) kinds.push_back(term.kind);
  return kinds;
}

// losses/utils.py: loss_function, compound_loss: Σ mask·ℓ·γ^k / (Σ mask + 1e-5), then weighted
// (weights not normalized). `values` [T, N].
MaskedLoss reduce_masked(const torch::Tensor& values, const torch::Tensor& mask, const LossSpec& spec, double decay) {
  const auto weight = mask.to(torch::kFloat);
  const auto denominator = weight.sum() + kEps;
  MaskedLoss result;
  result.loss = torch::zeros({}, values.options());
  for (std::size_t t = 0; t < spec.terms.size(); ++t) {
    auto term = (values[static_cast<std::int64_t>(t)] * weight * decay).sum() / denominator;
    result.loss = result.loss + spec.terms[t].weight * term;
    if (spec.reports_terms()) result.terms[spec.terms[t].name] = term.detach();
  }
  return result;
}

}  // namespace

MaskedLoss masked_divergence(const torch::Tensor& logits, const torch::Tensor& target_logits,
                             const torch::Tensor& mask, const LossSpec& spec, double decay,
                             std::int64_t chunk_rows) {
  check_pair(logits, target_logits, "masked_divergence");
  check_mask(logits, mask, spec);
  return reduce_masked(rowwise_divergences(logits, target_logits, spec_kinds(spec), chunk_rows), mask, spec, decay);
}

MaskedLoss masked_divergence(const torch::Tensor& logits, const TargetDistribution& targets, const torch::Tensor& mask,
                             const LossSpec& spec, double decay, std::int64_t chunk_rows) {
  check_pair(logits, targets.logits, "masked_divergence");
  check_mask(logits, mask, spec);
  return reduce_masked(rowwise_divergences(logits, targets, spec_kinds(spec), chunk_rows), mask, spec, decay);
}

MaskedLoss masked_prefix_divergence(const torch::Tensor& logits, const TargetDistribution& targets,
                                    const torch::Tensor& mask, const LossSpec& spec, double decay,
                                    std::int64_t chunk_rows) {
  check_prefix(logits, targets, "masked_prefix_divergence");
  check_mask(targets.logits, mask, spec);
  return reduce_masked(scored_prefix_divergences(logits, targets, spec_kinds(spec), chunk_rows), mask, spec, decay);
}

}  // namespace nn
}  // namespace speculators
