// myalgo's loss and metrics against the definition written out as loops, and against a hand
// count of correct heads on a row with two documents and padding.
#include <catch2/catch.hpp>

#include <set>

#include "loss.h"
#include "speculators/error.h"
#include "speculators/nn/target_mask.h"
#include "test_util.h"

using namespace speculators;
using namespace speculators::myalgo;

namespace {

const torch::Tensor kMask = torch::tensor({0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0}, torch::kInt64);
const torch::Tensor kDocs = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, -1}, torch::kInt64);

std::vector<torch::Tensor> random_heads(std::int64_t count, std::int64_t length, std::int64_t vocab) {
  std::vector<torch::Tensor> heads;
  for (std::int64_t j = 0; j < count; ++j) heads.push_back(torch::randn({length, vocab}, torch::requires_grad()));
  return heads;
}

double metric(const TensorMap& metrics, const std::string& key) {
  REQUIRE(metrics.count(key) == 1);
  REQUIRE(metrics.at(key).dim() == 0);
  return metrics.at(key).item<double>();
}

// One-hot-ish logits [L, V] whose argmax at row i is ids[i].
torch::Tensor peaked(const std::vector<std::int64_t>& ids, std::int64_t vocab) {
  auto logits = torch::zeros({static_cast<std::int64_t>(ids.size()), vocab});
  for (std::size_t i = 0; i < ids.size(); ++i) logits[static_cast<std::int64_t>(i)][ids[i]] = 5.0;
  return logits;
}

}  // namespace

TEST_CASE("multi-head loss equals the loop-by-loop definition", "[myalgo][loss]") {
  torch::manual_seed(11);
  const std::int64_t length = 12, vocab = 7;
  for (double gamma : {1.0, 0.8, 0.5}) {
    auto heads = random_heads(4, length, vocab);
    auto targets = torch::randn({length, vocab}) * 2.0;
    HeadLoss result = multi_head_kl_loss(heads, targets, kMask, kDocs, gamma);
    const double expected = test::loop_loss(heads, targets, kMask, kDocs, gamma);
    CHECK(result.loss.dim() == 0);
    CHECK(result.loss.item<double>() == Approx(expected).epsilon(1e-5));
    CHECK(metric(result.metrics, "loss_sum") == Approx(expected).epsilon(1e-5));
    CHECK(metric(result.metrics, "loss_total") == 1.0);
  }
}

TEST_CASE("cross-document and padding positions do not reach the loss", "[myalgo][loss]") {
  torch::manual_seed(12);
  const std::int64_t length = 12, vocab = 7;
  auto heads = random_heads(3, length, vocab);
  auto targets = torch::randn({length, vocab});
  const double before = multi_head_kl_loss(heads, targets, kMask, kDocs, 0.8).loss.item<double>();

  // Position 4 is the last token of document 0: every head there predicts a token of document 1.
  // Positions 10 and 11 are padding. Changing what the heads say there must change nothing.
  std::vector<torch::Tensor> changed;
  for (auto& h : heads) {
    auto c = h.detach().clone();
    for (std::int64_t i : {4, 10, 11}) c[i] = torch::randn({vocab}) * 10.0;
    changed.push_back(c);
  }
  // The verifier's distribution at the last position of a document (rows 4 and 9) predicts a
  // token outside it, so no valid pair reads it; nor the padding rows.
  auto targets_changed = targets.clone();
  for (std::int64_t i : {4, 9, 10, 11}) targets_changed[i] = torch::randn({vocab}) * 10.0;
  const double after = multi_head_kl_loss(changed, targets_changed, kMask, kDocs, 0.8).loss.item<double>();
  CHECK(after == Approx(before).epsilon(1e-6));

  // ...while a position inside a document does count.
  changed[0][1] = torch::randn({vocab}) * 10.0;
  CHECK(multi_head_kl_loss(changed, targets, kMask, kDocs, 0.8).loss.item<double>() != Approx(before));
}

TEST_CASE("myalgo's pairs (i, j) follow the predicted token's mask and document", "[myalgo][loss]") {
  // Head 1 at i predicts token i+1: needs doc[i+1] == doc[i] and loss_mask[i+1] == 1.
  auto v1 = nn::shifted_target_mask(kDocs, kMask, 1);
  std::set<std::int64_t> got;
  for (std::int64_t i = 0; i < v1.size(0); ++i)
    if (v1[i].item<bool>()) got.insert(i);
  CHECK(got == std::set<std::int64_t>{0, 1, 2, 3, 6, 7, 8});
  CHECK(v1.size(0) == 11);
  // Head 3 at i predicts token i+3, target distribution at i+2.
  auto v3 = nn::shifted_target_mask(kDocs, kMask, 3);
  got.clear();
  for (std::int64_t i = 0; i < v3.size(0); ++i)
    if (v3[i].item<bool>()) got.insert(i);
  CHECK(got == std::set<std::int64_t>{0, 1, 5, 6});
  // A head longer than the row has no valid position at all.
  CHECK(nn::shifted_target_mask(kDocs, kMask, 12).size(0) == 0);
}

TEST_CASE("acc_j and full_acc_j match a hand count", "[myalgo][loss][metrics]") {
  // Row: doc 0 = positions 0..3, doc 1 = 4..6, padding at 7; loss_mask[2] = 0.
  const auto mask = torch::tensor({1, 1, 0, 1, 1, 1, 1, 0}, torch::kInt64);
  const auto docs = torch::tensor({0, 0, 0, 0, 1, 1, 1, -1}, torch::kInt64);
  const std::vector<std::int64_t> top = {0, 1, 2, 3, 0, 1, 2, 3};  // verifier argmax per position
  auto targets = peaked(top, 4);
  // Valid pairs: head 1 at i in {0, 2, 4, 5}; head 2 at i in {1, 4}.
  // Head 1 (target at i) is right at i in {0, 4, 6}; head 2 (target at i+1) right at {1, 4}.
  std::vector<std::int64_t> head1 = {0, 2, 3, 0, 0, 3, 2, 0};
  std::vector<std::int64_t> head2 = {3, 2, 0, 1, 1, 3, 0, 0};
  HeadLoss result = multi_head_kl_loss({peaked(head1, 4), peaked(head2, 4)}, targets, mask, docs, 1.0);
  CHECK(metric(result.metrics, "acc_1_sum") == 2.0);  // i = 0, 4
  CHECK(metric(result.metrics, "acc_1_total") == 4.0);
  CHECK(metric(result.metrics, "full_acc_1_sum") == 2.0);
  CHECK(metric(result.metrics, "full_acc_1_total") == 4.0);
  CHECK(metric(result.metrics, "acc_2_sum") == 2.0);  // i = 1, 4
  CHECK(metric(result.metrics, "acc_2_total") == 2.0);
  CHECK(metric(result.metrics, "full_acc_2_sum") == 1.0);  // i = 4 only: head 1 was wrong at 1
  CHECK(metric(result.metrics, "full_acc_2_total") == 2.0);
  CHECK(result.metrics.size() == 2 + 4 * 2);  // loss, acc_1, acc_2, full_acc_1, full_acc_2
}

TEST_CASE("every metric key is present even when a head has no valid position", "[myalgo][loss][metrics]") {
  const auto mask = torch::ones({3}, torch::kInt64);
  const auto docs = torch::zeros({3}, torch::kInt64);
  auto heads = random_heads(5, 3, 4);  // heads 3..5 reach past the row
  HeadLoss result = multi_head_kl_loss(heads, torch::randn({3, 4}), mask, docs, 0.8);
  for (int j = 1; j <= 5; ++j) {
    CHECK(result.metrics.count("acc_" + std::to_string(j) + "_total") == 1);
    CHECK(result.metrics.count("full_acc_" + std::to_string(j) + "_sum") == 1);
  }
  CHECK(metric(result.metrics, "acc_4_total") == 0.0);
  CHECK(std::isfinite(result.loss.item<double>()));
}

TEST_CASE("the loss differentiates the heads only", "[myalgo][loss]") {
  auto heads = random_heads(2, 12, 7);
  auto targets = torch::randn({12, 7}, torch::requires_grad());
  multi_head_kl_loss(heads, targets, kMask, kDocs, 0.8).loss.backward();
  CHECK(!targets.grad().defined());
  for (auto& h : heads) {
    REQUIRE(h.grad().defined());
    CHECK(h.grad().abs().sum().item<double>() > 0.0);
    // Rows that are never valid for a head get exactly zero gradient (position 4, padding).
    CHECK(h.grad()[4].abs().sum().item<double>() == 0.0);
    CHECK(h.grad()[10].abs().sum().item<double>() == 0.0);
  }
}

TEST_CASE("bad loss inputs are reported", "[myalgo][loss][errors]") {
  auto targets = torch::randn({12, 7});
  CHECK_THROWS_AS(multi_head_kl_loss({}, targets, kMask, kDocs, 0.8), Error);
  CHECK_THROWS_WITH(multi_head_kl_loss({torch::randn({12, 6})}, targets, kMask, kDocs, 0.8),
                    Catch::Contains("head 1 logits have shape"));
  CHECK_THROWS_WITH(multi_head_kl_loss({torch::randn({12, 7})}, targets, kMask.slice(0, 0, 5), kDocs, 0.8),
                    Catch::Contains("loss_mask"));
}
