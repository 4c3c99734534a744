// Chunked divergences (speculators/losses/eager.py) against the textbook formulas written out here:
// values, gradients (autograd through the formulas, and the closed forms KL: q - p, CE: q -
// onehot), the masked decayed reduction, the JSON-weighted sum and --loss-fn parsing.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "speculators/error.h"
#include "speculators/nn/losses.h"

using namespace speculators;
using speculators::nn::Divergence;

namespace {

// ℓ per row straight from the definitions, on the whole [N, V] at once.
torch::Tensor textbook(const torch::Tensor& logits, const torch::Tensor& targets, Divergence kind) {
  const auto q = torch::softmax(logits.to(torch::kFloat), -1);
  const auto p = torch::softmax(targets.to(torch::kFloat), -1);
  const auto kl = (p * (p.log() - q.log())).sum(-1);
  const auto overlap = torch::minimum(p, q).sum(-1);
  switch (kind) {
    case Divergence::kKlDiv:
      return kl;
    case Divergence::kReverseKl:
      return (q * (q.log() - p.log())).sum(-1);
    case Divergence::kJensenShannon: {
      const auto m = (p + q) / 2;
      return 0.5 * (p * (p.log() - m.log())).sum(-1) + 0.5 * (q * (q.log() - m.log())).sum(-1);
    }
    case Divergence::kCrossEntropy:
      return -q.log().gather(-1, targets.argmax(-1, true)).squeeze(-1);
    case Divergence::kTotalVariation:
      return 1 - overlap;
    case Divergence::kNegLogAccept:
      return -overlap.clamp_min(1e-5).log();
    case Divergence::kLkHybrid: {
      const auto lambda = torch::exp(-3.0 * overlap.detach());
      return lambda * kl + (1 - lambda) * (1 - overlap);
    }
  }
  return {};
}

const std::vector<Divergence> kAll = {Divergence::kKlDiv,          Divergence::kReverseKl,
                                      Divergence::kJensenShannon,  Divergence::kCrossEntropy,
                                      Divergence::kTotalVariation, Divergence::kNegLogAccept,
                                      Divergence::kLkHybrid};

}  // namespace

TEST_CASE("chunked divergences equal the textbook formulas, values and gradients", "[losses]") {
  torch::manual_seed(0);
  const std::int64_t N = 11, V = 17;
  const auto targets = torch::randn({N, V}) * 2;
  const auto upstream = torch::randn({N});
  for (auto kind : kAll) {
    DYNAMIC_SECTION(nn::divergence_name(kind)) {
      auto a = (torch::randn({N, V}) * 2).requires_grad_(true);
      auto b = a.detach().clone().requires_grad_(true);
      const auto chunked = nn::rowwise_divergences(a, targets, {kind}, /*chunk_rows=*/4)[0];
      const auto expected = textbook(b, targets, kind);
      REQUIRE(torch::allclose(chunked, expected, 1e-5, 1e-6));
      (chunked * upstream).sum().backward();
      (expected * upstream).sum().backward();
      REQUIRE(torch::allclose(a.grad(), b.grad(), 1e-4, 1e-6));
      // The library's unchunked form agrees too.
      REQUIRE(torch::allclose(nn::reference_divergence(a.detach(), targets, kind), expected.detach(), 1e-5, 1e-6));
    }
  }
}

TEST_CASE("closed-form gradients: KL gives q - p, CE gives q - onehot(argmax p)", "[losses]") {
  torch::manual_seed(1);
  const auto targets = torch::randn({6, 9});
  auto logits = torch::randn({6, 9}).requires_grad_(true);
  nn::rowwise_divergences(logits, targets, {Divergence::kKlDiv}, 2)[0].sum().backward();
  const auto q = torch::softmax(logits.detach(), -1), p = torch::softmax(targets, -1);
  REQUIRE(torch::allclose(logits.grad(), q - p, 1e-5, 1e-6));

  auto logits2 = logits.detach().clone().requires_grad_(true);
  nn::rowwise_divergences(logits2, targets, {Divergence::kCrossEntropy}, 5)[0].sum().backward();
  const auto onehot = torch::one_hot(targets.argmax(-1), 9).to(torch::kFloat);
  REQUIRE(torch::allclose(logits2.grad(), q - onehot, 1e-5, 1e-6));
}

TEST_CASE("several terms are computed in one pass, each with its own gradient", "[losses]") {
  torch::manual_seed(2);
  const auto targets = torch::randn({7, 5});
  auto logits = torch::randn({7, 5}).requires_grad_(true);
  const auto both = nn::rowwise_divergences(logits, targets, {Divergence::kTotalVariation, Divergence::kKlDiv}, 3);
  REQUIRE(both.sizes() == torch::IntArrayRef({2, 7}));
  REQUIRE(torch::allclose(both[0], textbook(logits.detach(), targets, Divergence::kTotalVariation), 1e-5, 1e-6));
  REQUIRE(torch::allclose(both[1], textbook(logits.detach(), targets, Divergence::kKlDiv), 1e-5, 1e-6));
}

TEST_CASE("a weighted KL + CE pair has the gradient of the textbook sum", "[losses]") {
  torch::manual_seed(4);
  const auto targets = torch::randn({9, 6}) * 2;
  const auto upstream = torch::randn({2, 9});
  upstream[1][3] = 0;  // a row one term ignores
  auto a = torch::randn({9, 6}).requires_grad_(true);
  auto b = a.detach().clone().requires_grad_(true);
  const auto pair = nn::rowwise_divergences(a, targets, {Divergence::kKlDiv, Divergence::kCrossEntropy}, 4);
  (pair * upstream).sum().backward();
  const auto expected = textbook(b, targets, Divergence::kKlDiv) * upstream[0] +
                        textbook(b, targets, Divergence::kCrossEntropy) * upstream[1];
  expected.sum().backward();
  REQUIRE(torch::allclose(a.grad(), b.grad(), 1e-5, 1e-6));
}

TEST_CASE("bf16 logits: values in fp32, gradient in bf16", "[losses]") {
  torch::manual_seed(3);
  auto logits = torch::randn({4, 8}).to(torch::kBFloat16).requires_grad_(true);
  const auto targets = torch::randn({4, 8}).to(torch::kBFloat16);
  const auto values = nn::rowwise_divergences(logits, targets, {Divergence::kKlDiv}, 3);
  REQUIRE(values.scalar_type() == torch::kFloat);
  values.sum().backward();
  REQUIRE(logits.grad().scalar_type() == torch::kBFloat16);
  REQUIRE(torch::allclose(values[0], textbook(logits.detach(), targets, Divergence::kKlDiv), 1e-5, 1e-6));
}

TEST_CASE("masked reduction: sum(mask * l * decay) / (sum(mask) + 1e-5)", "[losses]") {
  torch::manual_seed(4);
  const std::int64_t N = 9, V = 6;
  const auto targets = torch::randn({N, V});
  auto logits = torch::randn({N, V}).requires_grad_(true);
  const auto mask = torch::tensor({1, 0, 1, 1, 0, 0, 1, 1, 1}, torch::kLong);
  const double decay = std::pow(0.8, 2);
  const auto spec = nn::parse_loss_fn("kl_div");
  const auto result = nn::masked_divergence(logits, targets, mask, spec, decay, 2);
  const auto l = textbook(logits.detach(), targets, Divergence::kKlDiv);
  const double expected = (l * mask.to(torch::kFloat) * decay).sum().item<double>() / (6 + 1e-5);
  REQUIRE(result.loss.item<double>() == Approx(expected).epsilon(1e-5));
  REQUIRE(result.terms.empty());  // a single term is not reported separately
  result.loss.backward();
  // Rows outside the mask get no gradient at all.
  REQUIRE(logits.grad()[1].abs().sum().item<double>() == 0.0);
  REQUIRE(logits.grad()[0].abs().sum().item<double>() > 0.0);
}

TEST_CASE("an empty mask gives loss 0 (denominator 1e-5), not NaN", "[losses]") {
  auto logits = torch::randn({3, 4}).requires_grad_(true);
  const auto result = nn::masked_divergence(logits, torch::randn({3, 4}), torch::zeros({3}), nn::parse_loss_fn("tv"));
  REQUIRE(result.loss.item<double>() == 0.0);
  result.loss.backward();
  REQUIRE(logits.grad().abs().sum().item<double>() == 0.0);
}

TEST_CASE("JSON-weighted sum with per-term values", "[losses]") {
  torch::manual_seed(5);
  const auto targets = torch::randn({5, 7});
  const auto logits = torch::randn({5, 7});
  const auto mask = torch::tensor({1, 1, 0, 1, 1});
  const auto spec = nn::parse_loss_fn("{\"ce\": 0.1, \"tv\": 0.9}");
  REQUIRE(spec.terms.size() == 2);
  REQUIRE(spec.reports_terms());
  const auto result = nn::masked_divergence(logits, targets, mask, spec, 0.5, 2);
  auto term = [&](Divergence kind) {
    return (textbook(logits, targets, kind) * mask.to(torch::kFloat) * 0.5).sum().item<double>() / (4 + 1e-5);
  };
  const double ce = term(Divergence::kCrossEntropy), tv = term(Divergence::kTotalVariation);
  REQUIRE(result.terms.at("ce").item<double>() == Approx(ce).epsilon(1e-5));
  REQUIRE(result.terms.at("tv").item<double>() == Approx(tv).epsilon(1e-5));
  REQUIRE(result.loss.item<double>() == Approx(0.1 * ce + 0.9 * tv).epsilon(1e-5));
  REQUIRE_FALSE(result.terms.at("ce").requires_grad());
}

TEST_CASE("--loss-fn parsing", "[losses]") {
  for (const auto& name : nn::divergence_names()) {
    const auto spec = nn::parse_loss_fn(name);
    REQUIRE(spec.terms.size() == 1);
    REQUIRE(spec.terms[0].name == name);
    REQUIRE(spec.terms[0].weight == 1.0);
    REQUIRE(nn::divergence_name(spec.terms[0].kind) == name);
  }
  const auto spec = nn::parse_loss_fn("{\"kl_div\": 2, \"jsd\": 0.5}");
  REQUIRE(spec.terms.size() == 2);
  // Integer weights are accepted; weights are not normalised.
  for (const auto& t : spec.terms) REQUIRE(t.weight == (t.name == "kl_div" ? 2.0 : 0.5));

  REQUIRE_THROWS_WITH(nn::parse_loss_fn("kld", "--loss-fn"),
                      Catch::Contains("--loss-fn") && Catch::Contains("'kld'") && Catch::Contains("kl_div"));
  REQUIRE_THROWS_WITH(nn::parse_loss_fn("{\"mse\": 1.0}"), Catch::Contains("'mse'"));
  REQUIRE_THROWS_WITH(nn::parse_loss_fn("{\"ce\": \"big\"}"), Catch::Contains("weight of 'ce'"));
  REQUIRE_THROWS_WITH(nn::parse_loss_fn("{}"), Catch::Contains("non-empty"));
  REQUIRE_THROWS_WITH(nn::parse_loss_fn("[1, 2]"), Catch::Contains("non-empty JSON object"));
  REQUIRE_THROWS_AS(nn::parse_loss_fn("kld"), Error);
  // 40,000 levels of brackets or a weight of 1e400: a usage error in one short line that quotes
  // only the start of the value and says why it is not a loss config.
  for (const std::string& bad : {"{\"a\":" + std::string(40000, '[') + std::string(40000, ']') + "}",
                                 std::string("{\"ce\": 1e400}")}) {
    try {
      nn::parse_loss_fn(bad, "--loss-fn");
      FAIL("accepted " << bad.substr(0, 20));
    } catch (const Error& e) {
      const std::string message = e.what();
      CHECK(e.code() == ExitCode::kUsage);
      CHECK(message.rfind("--loss-fn: unknown loss function '" + bad.substr(0, std::min<std::size_t>(80, bad.size())), 0) == 0);
      CHECK(message.find("(not a valid JSON object: --loss-fn: invalid JSON") != std::string::npos);
      CHECK(message.size() < 800);
    }
  }
}

TEST_CASE("shape errors name the mismatch", "[losses]") {
  const auto spec = nn::parse_loss_fn("kl_div");
  REQUIRE_THROWS_WITH(nn::masked_divergence(torch::randn({3, 4}), torch::randn({3, 5}), torch::ones({3}), spec),
                      Catch::Contains("equal shapes"));
  REQUIRE_THROWS_WITH(nn::masked_divergence(torch::randn({3, 4}), torch::randn({3, 4}), torch::ones({2}), spec),
                      Catch::Contains("mask"));
}
