// The inference path against the training path: a proposal chain from Eagle3Proposer equals
// what the K-step training forward predicts at the same position when its teacher-forced tokens
// are the chain itself (teacher forcing: step j at position i reads the token j places ahead).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "proposer.h"
#include "tiny_verifier.h"

using namespace speculators;
using namespace speculators::eagle3;
using namespace speculators::eagle3::testing;

namespace {

std::int64_t to_target(const Eagle3DraftModel& m, std::int64_t draft) {
  return m.d2t_.defined() && m.d2t_.numel() > 0 ? draft + m.d2t_[draft].item<std::int64_t>() : draft;
}

// `compared` steps of the chain are checked (all of them unless the window is shorter than the
// prefix: see proposer.h).
void check_chain_matches_training(bool mapping, std::int64_t window, std::int64_t n, std::int64_t K,
                                  std::int64_t compared) {
  TinyVerifier v;
  auto m = build(v, Json::object({{"sliding_window", window}}), mapping);
  torch::manual_seed(5);
  {
    // Random draft weights beyond the initialisation, so that no argmax is a tie.
    torch::NoGradGuard no_grad;
    for (auto& p : m->parameters()) {
      if (p.requires_grad()) p.add_(torch::randn_like(p) * 0.3);
    }
  }
  m->eval();
  const auto features = torch::randn({n + K, kA * kH});
  const auto next_tokens = torch::randint(1, kV, {n}, torch::kLong);  // x_1..x_n

  auto proposer = m->make_proposer();
  REQUIRE(proposer);
  // Two extends (prefill, then one accepted position) must equal one.
  proposer->extend(features.slice(0, 0, n - 1), torch::Tensor(), next_tokens.slice(0, 0, n - 1));
  proposer->extend(features.slice(0, n - 1, n), torch::Tensor(), next_tokens.slice(0, n - 1, n));
  REQUIRE(proposer->length() == n);
  const auto chain = proposer->propose(K);
  REQUIRE(static_cast<std::int64_t>(chain.size()) == K);
  REQUIRE(proposer->propose(K) == chain);  // propose() leaves the accepted state alone

  // Training forward on one document: input_ids = x_1..x_n, d_1..d_{K-1}; positions from 1.
  const std::int64_t L = n + K - 1;
  std::vector<std::int64_t> ids(next_tokens.data_ptr<std::int64_t>(), next_tokens.data_ptr<std::int64_t>() + n);
  for (std::int64_t j = 0; j + 1 < K; ++j) ids.push_back(chain[static_cast<std::size_t>(j)]);
  Batch b;
  b["input_ids"] = torch::tensor(ids).unsqueeze(0);
  b["hidden_states"] = features.slice(0, 0, L).unsqueeze(0);
  b["position_ids"] = torch::arange(1, L + 1, torch::kLong).unsqueeze(0);
  b["document_ids"] = torch::zeros({1, L}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto out = m->forward(b, Json::object({{"ttt_steps", K}}));
  REQUIRE(static_cast<std::int64_t>(out.output.size()) == K);
  for (std::int64_t j = 0; j < compared; ++j) {
    INFO("step " << j);
    CHECK(to_target(*m, out.output[static_cast<std::size_t>(j)][0][n - 1].item<std::int64_t>()) ==
          chain[static_cast<std::size_t>(j)]);
  }
}

}  // namespace

TEST_CASE("a proposal chain equals the training forward's prediction on that chain", "[eagle3][proposer]") {
  SECTION("draft vocabulary, window longer than the sequence") { check_chain_matches_training(true, 64, 9, 3, 3); }
  SECTION("full vocabulary, K = 5") { check_chain_matches_training(false, 64, 7, 5, 5); }
  // With a window shorter than the prefix, the first proposal still equals step 0 of training.
  SECTION("a window shorter than the prefix") { check_chain_matches_training(true, 4, 11, 4, 1); }
}

TEST_CASE("the proposer rejects features of the wrong width and proposing before any position", "[eagle3][proposer]") {
  TinyVerifier v;
  auto m = build(v);
  auto proposer = m->make_proposer();
  REQUIRE_THROWS_WITH(proposer->propose(2), Catch::Contains("before any extend"));
  REQUIRE_THROWS_WITH(proposer->extend(torch::zeros({2, kH}), torch::Tensor(), torch::zeros({2}, torch::kLong)),
                      Catch::Contains("features must be [2, 96]"));
}
