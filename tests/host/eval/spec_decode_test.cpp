// The verifier's key/value cache against its full forward, and greedy speculative decoding:
// exactness with any draft, τ = k + 1 with a perfect draft, τ = 1 with a draft that is always
// wrong, and the acceptance statistics computed from the histogram by hand.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "eval/cached_verifier.h"
#include "eval/spec_decode.h"
#include "tools/eval_command.h"
#include "tools/make_verifier.h"

using namespace speculators;

namespace {

VerifierModel tiny_verifier(std::int64_t window = 0) {
  MakeVerifierOptions o;
  o.hidden_size = 32;
  o.num_layers = 3;
  o.vocab_size = 64;
  o.seed = 3;
  TransformerConfig c = make_verifier_config(o);
  if (window > 0) {
    c.sliding_window = window;
    c.layer_types = {"sliding_attention", "full_attention", "sliding_attention"};
  }
  torch::manual_seed(7);
  VerifierModel m(c);
  m->eval();
  return m;
}

// Proposes the verifier's own greedy continuation (or, when `wrong`, a token that never equals
// it), recomputed from the whole sequence with the full forward.
class OracleProposer : public Proposer {
 public:
  OracleProposer(VerifierModelImpl& verifier, std::int64_t first_token, bool wrong)
      : verifier_(verifier), tokens_{first_token}, wrong_(wrong) {}
  void extend(const torch::Tensor& features, const torch::Tensor& last_hidden, const torch::Tensor& next) override {
    REQUIRE(features.size(0) == next.numel());
    REQUIRE(last_hidden.size(0) == next.numel());
    feature_width_ = features.size(-1);
    for (std::int64_t i = 0; i < next.numel(); ++i) tokens_.push_back(next[i].item<std::int64_t>());
    length_ += next.numel();
  }
  std::vector<std::int64_t> propose(std::int64_t k) override {
    torch::NoGradGuard no_grad;
    std::vector<std::int64_t> seq = tokens_, out;
    for (std::int64_t j = 0; j < k; ++j) {
      const auto ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
      const auto logits = verifier_.forward(ids, torch::Tensor(), torch::Tensor(), {}).logits;
      const std::int64_t g = logits[0][-1].argmax().item<std::int64_t>();
      out.push_back(wrong_ ? (g + 1) % verifier_.config().vocab_size : g);
      seq.push_back(g);
    }
    return out;
  }
  std::int64_t length() const override { return length_; }
  std::int64_t feature_width() const { return feature_width_; }

 private:
  VerifierModelImpl& verifier_;
  std::vector<std::int64_t> tokens_;
  bool wrong_;
  std::int64_t length_ = 0;
  std::int64_t feature_width_ = -1;
};

}  // namespace

TEST_CASE("the cached verifier gives the full forward's logits and hidden states", "[spec_decode]") {
  for (std::int64_t window : {0, 4}) {
    INFO("window " << window);
    auto v = tiny_verifier(window);
    torch::NoGradGuard no_grad;
    const auto ids = torch::randint(0, 64, {1, 13}, torch::kLong);
    const std::vector<std::int64_t> layers = {1, 2, 3};
    const auto full = v->forward(ids, torch::Tensor(), torch::Tensor(), layers);
    CachedVerifier cache(*v, layers);
    std::vector<torch::Tensor> logits, hidden;
    std::int64_t at = 0;
    for (std::int64_t len : {5, 1, 3, 4}) {  // prefill, then steps of several sizes
      auto out = cache.step(ids.slice(1, at, at + len));
      logits.push_back(out.logits);
      hidden.push_back(out.hidden_states[1]);
      at += len;
    }
    CHECK(cache.length() == 13);
    CHECK(torch::allclose(torch::cat(logits, 1), full.logits, 1e-5, 1e-5));
    CHECK(torch::allclose(torch::cat(hidden, 1), full.hidden_states[1], 1e-5, 1e-5));

    // Truncating and stepping again reproduces the same positions.
    cache.truncate(9);
    auto again = cache.step(ids.slice(1, 9, 13));
    CHECK(torch::allclose(again.logits, full.logits.slice(1, 9, 13), 1e-5, 1e-5));
    CHECK(torch::allclose(again.hidden_states[2], full.hidden_states[2].slice(1, 9, 13), 1e-5, 1e-5));
    CHECK_THROWS_WITH(cache.truncate(14), Catch::Contains("cannot truncate 13 positions to 14"));
  }
}

TEST_CASE("speculative decoding is exact; a perfect draft gets tau = k + 1, a wrong one tau = 1", "[spec_decode]") {
  auto v = tiny_verifier();
  const std::vector<std::int64_t> prompt = {5, 17, 33, 2, 60, 41};
  const auto greedy = greedy_decode(*v, prompt, 20);
  REQUIRE(greedy.tokens.size() == 20);
  for (std::int64_t k : {1, 3, 4}) {
    INFO("k = " << k);
    OracleProposer perfect(*v, prompt[0], false);
    const auto a = speculative_decode(*v, perfect, {1, 2}, prompt, 20, k);
    CHECK(a.tokens == greedy.tokens);
    REQUIRE(a.steps > 0);
    CHECK(a.accepted[static_cast<std::size_t>(k)] == a.steps);
    CHECK(static_cast<double>(a.emitted) / static_cast<double>(a.steps) == Approx(k + 1));

    OracleProposer wrong(*v, prompt[0], true);
    const auto b = speculative_decode(*v, wrong, {1, 2}, prompt, 20, k);
    CHECK(b.tokens == greedy.tokens);
    CHECK(b.accepted[0] == b.steps);
    CHECK(b.emitted == b.steps);
    CHECK(b.steps == 19);  // one token per step after the prefill's
  }
}

TEST_CASE("a draft with no target layers decodes with empty features", "[spec_decode]") {
  // Training accepts a draft whose target_layer_ids() is empty (its features are [T, 0]); decoding
  // must hand the proposer the same [n, 0] features, not fail on an empty concatenation.
  auto v = tiny_verifier();
  const std::vector<std::int64_t> prompt = {5, 17, 33, 2, 60, 41};
  const auto greedy = greedy_decode(*v, prompt, 8);
  OracleProposer perfect(*v, prompt[0], false);
  const auto out = speculative_decode(*v, perfect, {}, prompt, 8, 2);
  CHECK(out.tokens == greedy.tokens);
  CHECK(perfect.feature_width() == 0);
}

TEST_CASE("acceptance statistics from the histogram", "[spec_decode]") {
  EvalReport r;
  r.k = 3;
  r.accepted = {2, 1, 3, 4};  // 10 steps accepting 0, 1, 2, 3 drafted tokens
  summarize_acceptance(r);
  CHECK(r.steps == 10);
  CHECK(r.emitted == 2 * 1 + 1 * 2 + 3 * 3 + 4 * 4);
  CHECK(r.tau == Approx(2.9));
  // >= 1: 8/10, >= 2: 7/10, >= 3: 4/10; τ = 1 + their sum.
  CHECK(r.at_least == std::vector<double>{0.8, 0.7, 0.4});
  CHECK(r.tau == Approx(1 + 0.8 + 0.7 + 0.4));
  CHECK(r.conditional[0] == Approx(0.8));
  CHECK(r.conditional[1] == Approx(7.0 / 8.0));
  CHECK(r.conditional[2] == Approx(4.0 / 7.0));
}

TEST_CASE("the run directory of a checkpoint ignores a trailing slash", "[spec_decode]") {
  CHECK(run_dir_of("out/ckpt/3") == "out/ckpt");
  CHECK(run_dir_of("out/ckpt/3/") == "out/ckpt");
  CHECK(run_dir_of("out/./ckpt/3") == "out/ckpt");
}
