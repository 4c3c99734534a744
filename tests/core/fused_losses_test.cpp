// The fused row kernels behind nn::TargetDistribution (core/src/fused_divergence.cpp) against the
// unfused LibTorch operators: the target side (softmax, Σ p log p, argmax), the KL and CE values
// and their gradients (autograd through log_softmax / kl_div / cross_entropy), bf16 logits, rows
// shared between TTT steps, the masked reduction, and the general path for the other terms.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "speculators/nn/losses.h"

using namespace speculators;
using speculators::nn::Divergence;

namespace {

namespace F = torch::nn::functional;

// KL(p‖q) and CE(argmax p) per row by the plain operators, differentiable in `logits`.
// fp32 unless both inputs are fp64.
torch::Tensor unfused(const torch::Tensor& logits, const torch::Tensor& targets, Divergence kind) {
  const auto dtype = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto logq = F::log_softmax(logits.to(dtype), F::LogSoftmaxFuncOptions(-1));
  if (kind == Divergence::kCrossEntropy) {
    return F::nll_loss(logq, targets.argmax(-1), F::NLLLossFuncOptions().reduction(torch::kNone));
  }
  const auto p = torch::softmax(targets.to(dtype), -1);
  return F::kl_div(logq, p, F::KLDivFuncOptions().reduction(torch::kNone)).sum(-1);
}

}  // namespace

TEST_CASE("fused target side: softmax, per-row sums and argmax equal the plain operators", "[losses][fused]") {
  torch::manual_seed(10);
  for (std::int64_t V : {5, 17, 1000, 4099}) {  // below one vector, tails, several 256-element blocks
    DYNAMIC_SECTION("V = " << V) {
      auto targets = torch::randn({13, V}) * 4;
      targets[2][1] = -std::numeric_limits<float>::infinity();  // p = 0 there: 0·log 0 counts 0
      const auto t = nn::target_distribution(targets, {Divergence::kKlDiv});
      REQUIRE(t.fused());
      const auto p = torch::softmax(targets, -1);
      REQUIRE(torch::allclose(t.probs, p, 1e-5, 1e-7));
      REQUIRE(t.probs[2][1].item<float>() == 0.0f);
      REQUIRE(t.stats.sizes() == torch::IntArrayRef({13, 3}));
      const auto stats = t.stats.to(torch::kFloat);
      REQUIRE(torch::allclose(stats.select(1, 0), torch::logsumexp(targets, -1), 1e-5, 1e-5));
      const auto expected_logit = torch::where(p > 0, p * targets, torch::zeros_like(p)).sum(-1);
      REQUIRE(torch::allclose(stats.select(1, 1), expected_logit, 1e-5, 1e-5));
      REQUIRE(torch::allclose(stats.select(1, 2), torch::ones({13}), 1e-5, 0));
      REQUIRE(torch::equal(t.label, targets.argmax(-1)));
    }
  }
}

TEST_CASE("fused KL and CE equal the unfused operators, values and gradients", "[losses][fused]") {
  torch::manual_seed(11);
  const std::int64_t N = 37;
  const std::vector<std::vector<Divergence>> cases = {
      {Divergence::kKlDiv}, {Divergence::kCrossEntropy}, {Divergence::kKlDiv, Divergence::kCrossEntropy}};
  for (std::int64_t V : {17, 2053}) {
    for (const auto& kinds : cases) {
      DYNAMIC_SECTION("V = " << V << ", " << kinds.size() << " term(s), first " << nn::divergence_name(kinds[0])) {
        const auto targets = torch::randn({N, V}) * 3;
        auto upstream = torch::randn({static_cast<std::int64_t>(kinds.size()), N});
        upstream.select(1, 4).zero_();  // a row outside the loss mask: zero gradient
        auto a = (torch::randn({N, V}) * 3).requires_grad_(true);
        auto b = a.detach().clone().requires_grad_(true);
        const auto t = nn::target_distribution(targets, kinds);
        REQUIRE(t.fused());
        const auto values = nn::rowwise_divergences(a, t, kinds, /*chunk_rows=*/8);
        std::vector<torch::Tensor> rows;
        for (auto kind : kinds) rows.push_back(unfused(b, targets, kind));
        const auto expected = torch::stack(rows);
        REQUIRE(torch::allclose(values, expected, 1e-5, 2e-5));
        (values * upstream).sum().backward();
        (expected * upstream).sum().backward();
        REQUIRE(torch::allclose(a.grad(), b.grad(), 1e-4, 1e-6));
        REQUIRE(a.grad()[4].abs().sum().item<double>() == 0.0);
      }
    }
  }
}

TEST_CASE("fused KL of a row with itself is exactly 0, and close rows stay accurate", "[losses][fused]") {
  torch::manual_seed(15);
  const auto targets = torch::randn({8, 300}) * 5;
  const auto t = nn::target_distribution(targets, {Divergence::kKlDiv});
  REQUIRE(nn::rowwise_divergences(targets, t, {Divergence::kKlDiv})[0].abs().max().item<float>() == 0.0f);
  // Rows 1e-3 apart: KL is about 1e-6, as small as fp32 rounding of the unfused operators.
  // Against an fp64 computation the fused value is off by no more than those operators are.
  const auto close = targets + 1e-3 * torch::randn({8, 300});
  const auto exact = unfused(close.to(torch::kDouble), targets.to(torch::kDouble), Divergence::kKlDiv);
  const double unfused_error = (unfused(close, targets, Divergence::kKlDiv).to(torch::kDouble) - exact)
                                   .abs().max().item<double>();
  const double fused_error = (nn::rowwise_divergences(close, t, {Divergence::kKlDiv})[0].to(torch::kDouble) - exact)
                                 .abs().max().item<double>();
  INFO("fused error " << fused_error << ", unfused error " << unfused_error);
  REQUIRE(fused_error <= std::max(2 * unfused_error, 1e-6));
}

TEST_CASE("fused kernels on bf16 logits: values in fp32, gradient in bf16", "[losses][fused]") {
  torch::manual_seed(12);
  auto logits = (torch::randn({6, 40}) * 2).to(torch::kBFloat16).requires_grad_(true);
  const auto targets = (torch::randn({6, 40}) * 2).to(torch::kBFloat16);
  const auto t = nn::target_distribution(targets, {Divergence::kKlDiv});
  const auto values = nn::rowwise_divergences(logits, t, {Divergence::kKlDiv}, 4);
  REQUIRE(values.scalar_type() == torch::kFloat);
  auto ref_logits = logits.detach().to(torch::kFloat).requires_grad_(true);
  const auto expected = unfused(ref_logits, targets, Divergence::kKlDiv);
  REQUIRE(torch::allclose(values[0], expected, 1e-5, 1e-5));
  values.sum().backward();
  expected.sum().backward();
  REQUIRE(logits.grad().scalar_type() == torch::kBFloat16);
  REQUIRE(torch::allclose(logits.grad().to(torch::kFloat), ref_logits.grad(), 1e-2, 1e-3));
}

TEST_CASE("a target side computed once serves row slices (TTT steps) like the sliced logits", "[losses][fused]") {
  torch::manual_seed(13);
  const std::int64_t L = 20, V = 33;
  const auto targets = torch::randn({L, V});
  const auto spec = nn::parse_loss_fn("kl_div");
  const auto all = nn::target_distribution(targets, spec);
  const auto mask = (torch::rand({L}) > 0.3).to(torch::kLong);
  for (std::int64_t k = 0; k < 3; ++k) {
    auto logits = torch::randn({L - k, V}).requires_grad_(true);
    auto again = logits.detach().clone().requires_grad_(true);
    const auto fused = nn::masked_divergence(logits, all.slice(k, L), mask.slice(0, k, L), spec, 0.8, 6);
    const auto plain = nn::masked_divergence(again, targets.slice(0, k, L), mask.slice(0, k, L), spec, 0.8, 6);
    REQUIRE(fused.loss.item<double>() == Approx(plain.loss.item<double>()).epsilon(1e-5));
    fused.loss.backward();
    plain.loss.backward();
    REQUIRE(torch::allclose(logits.grad(), again.grad(), 1e-4, 1e-7));
  }
}

TEST_CASE("a scored prefix of the logits: the unfused loss of the sliced rows, zero gradient past them",
          "[losses][fused]") {
  torch::manual_seed(15);
  const std::int64_t L = 19, V = 31;
  const auto targets = torch::randn({L, V});
  const auto mask = (torch::rand({L}) > 0.3).to(torch::kLong);
  for (const char* loss : {"kl_div", "{\"kl_div\": 0.5, \"ce\": 2.0}", "{\"kl_div\": 1.0, \"tv\": 1.0}"}) {
    const auto spec = nn::parse_loss_fn(loss, "--loss-fn");
    const auto all = nn::target_distribution(targets, spec);
    for (std::int64_t k = 0; k < 3; ++k) {
      INFO("loss " << loss << ", step " << k);
      auto logits = (2 * torch::randn({L, V})).requires_grad_(true);
      auto again = logits.detach().clone().requires_grad_(true);
      const auto prefix = nn::masked_prefix_divergence(logits, all.slice(k, L), mask.slice(0, k, L), spec, 0.8, 5);
      const auto plain = nn::masked_divergence(again.slice(0, 0, L - k), targets.slice(0, k, L), mask.slice(0, k, L),
                                               spec, 0.8, 5);
      REQUIRE(prefix.loss.item<double>() == Approx(plain.loss.item<double>()).epsilon(1e-5));
      prefix.loss.backward();
      plain.loss.backward();
      REQUIRE(logits.grad().sizes() == again.grad().sizes());
      REQUIRE(torch::allclose(logits.grad(), again.grad(), 1e-4, 1e-7));
      REQUIRE(torch::equal(logits.grad().slice(0, L - k, L), torch::zeros({k, V})));
    }
  }
  const auto spec = nn::parse_loss_fn("kl_div");
  const auto all = nn::target_distribution(targets, spec);
  REQUIRE_THROWS_WITH(nn::masked_prefix_divergence(torch::randn({L - 1, V}), all, mask, spec),
                      Catch::Contains("at least the targets' rows"));
  REQUIRE_THROWS_WITH(nn::masked_prefix_divergence(torch::randn({L, V + 1}), all, mask, spec),
                      Catch::Contains("at least the targets' rows"));
}

TEST_CASE("terms without a closed form keep the general path", "[losses][fused]") {
  torch::manual_seed(14);
  const auto targets = torch::randn({7, 9});
  const std::vector<Divergence> kinds = {Divergence::kKlDiv, Divergence::kTotalVariation};
  const auto t = nn::target_distribution(targets, kinds);
  REQUIRE_FALSE(t.fused());
  REQUIRE(torch::equal(t.label, targets.argmax(-1)));
  const auto logits = torch::randn({7, 9});
  REQUIRE(torch::allclose(nn::rowwise_divergences(logits, t, kinds, 3),
                          nn::rowwise_divergences(logits, targets, kinds, 3)));
  REQUIRE_THROWS_WITH(nn::rowwise_divergences(torch::randn({7, 8}), t, kinds), Catch::Contains("equal shapes"));
}
