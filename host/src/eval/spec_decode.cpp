// See spec_decode.h.
#include "eval/spec_decode.h"

#include <chrono>

#include "eval/cached_verifier.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

using Clock = std::chrono::steady_clock;

torch::Tensor row(const std::vector<std::int64_t>& tokens) {
  return torch::tensor(tokens, torch::kLong).unsqueeze(0);
}

void check_request(const std::vector<std::int64_t>& prompt, std::int64_t max_new) {
  if (prompt.empty()) fail_usage("decoding needs a prompt of at least one token");
  if (max_new < 1) fail_usage(cat("max new tokens must be at least 1, got ", max_new));
}

}  // namespace

GreedyResult greedy_decode(VerifierModelImpl& verifier, const std::vector<std::int64_t>& prompt,
                           std::int64_t max_new) {
  check_request(prompt, max_new);
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  CachedVerifier cache(verifier);
  GreedyResult out;
  auto logits = cache.step(row(prompt), /*last_logits_only=*/true).logits;
  while (static_cast<std::int64_t>(out.tokens.size()) < max_new) {
    out.tokens.push_back(logits[0].argmax().item<std::int64_t>());
    if (static_cast<std::int64_t>(out.tokens.size()) == max_new) break;
    logits = cache.step(row({out.tokens.back()}), /*last_logits_only=*/true).logits;
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

SpeculativeResult speculative_decode(VerifierModelImpl& verifier, Proposer& proposer,
                                     const std::vector<std::int64_t>& aux_layer_ids,
                                     const std::vector<std::int64_t>& prompt, std::int64_t max_new,
                                     std::int64_t k) {
  check_request(prompt, max_new);
  if (k < 1) fail_usage(cat("speculative tokens must be at least 1, got ", k));
  if (proposer.length() != 0) fail("speculative decoding needs a fresh proposer");
  torch::NoGradGuard no_grad;
  const auto start = Clock::now();
  std::vector<std::int64_t> ids = aux_layer_ids;
  ids.push_back(verifier.config().num_hidden_layers);  // the final layer, before the final norm
  const auto A = static_cast<std::int64_t>(aux_layer_ids.size());
  CachedVerifier cache(verifier, ids);
  // Features [n, A·H] and last hidden states [n, H] of the first n positions of a step.
  // A draft without target layers (training accepts one: its features are [T, 0]) gets [n, 0].
  auto features_of = [A](const CachedVerifier::Output& o, std::int64_t n) {
    const torch::Tensor last = o.hidden_states.back()[0].narrow(0, 0, n);
    if (A == 0) return std::make_pair(last.new_empty({n, 0}), last);
    std::vector<torch::Tensor> aux(o.hidden_states.begin(), o.hidden_states.begin() + A);
    return std::make_pair(torch::cat(aux, -1)[0].narrow(0, 0, n), last);
  };

  SpeculativeResult out;
  out.accepted.assign(static_cast<std::size_t>(k + 1), 0);
  const auto p = static_cast<std::int64_t>(prompt.size());
  auto pre = cache.step(row(prompt));
  std::int64_t last = pre.logits[0][p - 1].argmax().item<std::int64_t>();
  out.tokens.push_back(last);
  {
    std::vector<std::int64_t> next(prompt.begin() + 1, prompt.end());
    next.push_back(last);
    auto [f, h] = features_of(pre, p);
    proposer.extend(f, h, row(next)[0]);
  }
  while (static_cast<std::int64_t>(out.tokens.size()) < max_new) {
    std::vector<std::int64_t> draft = proposer.propose(k);
    if (draft.empty()) fail("the draft proposed no tokens");
    if (static_cast<std::int64_t>(draft.size()) > k) draft.resize(static_cast<std::size_t>(k));
    std::vector<std::int64_t> input = {last};
    input.insert(input.end(), draft.begin(), draft.end());
    const std::int64_t before = cache.length();
    auto scored = cache.step(row(input));
    const auto greedy = scored.logits[0].argmax(-1).contiguous();  // greedy[i]: after input[i]
    const auto* g = greedy.data_ptr<std::int64_t>();
    std::int64_t a = 0;
    while (a < static_cast<std::int64_t>(draft.size()) && draft[static_cast<std::size_t>(a)] == g[a]) ++a;
    const std::int64_t bonus = g[a];
    cache.truncate(before + 1 + a);  // keep [last, d_1..d_a]
    std::vector<std::int64_t> next(draft.begin(), draft.begin() + a);
    next.push_back(bonus);
    auto [f, h] = features_of(scored, a + 1);
    proposer.extend(f, h, row(next)[0]);
    out.tokens.insert(out.tokens.end(), next.begin(), next.end());
    out.accepted[static_cast<std::size_t>(a)] += 1;
    out.emitted += a + 1;
    out.steps += 1;
    last = bonus;
  }
  out.tokens.resize(static_cast<std::size_t>(max_new));
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

}  // namespace speculators
