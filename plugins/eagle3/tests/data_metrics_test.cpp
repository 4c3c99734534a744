// Golden cases of the reference's unit tests: shift_batch (tests/unit/train/test_data.py) and the
// two-step accuracy chain (tests/unit/models/test_metrics.py: compute_accuracy_single_step), and
// the per-step alignment of speculators/models/eagle3/metrics.py: align_for_step.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "data.h"
#include "metrics.h"
#include "speculators/error.h"

using namespace speculators;
using namespace speculators::eagle3;

namespace {

std::vector<std::int64_t> to_vec(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous();
  return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
}

Sample raw_sample(std::int64_t T) {
  Sample s;
  s.tensors["input_ids"] = torch::arange(T, torch::kLong);
  // Row t of every feature tensor holds the value t, so the shift can be read off directly.
  s.tensors["hidden_states"] = torch::arange(T, torch::kFloat).unsqueeze(1).repeat({1, 6});
  s.tensors["verifier_last_hidden_states"] = torch::arange(T, torch::kFloat).unsqueeze(1).repeat({1, 2});
  s.tensors["loss_mask"] = torch::tensor({0, 0, 1, 1, 1}, torch::kLong).slice(0, 0, T);
  s.tensors["position_ids"] = torch::arange(T, torch::kLong);
  return s;
}

}  // namespace

TEST_CASE("shift_batch: the reference's test_data.py example", "[eagle3][data]") {
  const auto out = shift_batch(raw_sample(5));
  REQUIRE(out.has_value());
  const auto& t = out->tensors;
  REQUIRE(to_vec(t.at("input_ids")) == std::vector<std::int64_t>{1, 2, 3, 4});
  REQUIRE(to_vec(t.at("hidden_states").select(1, 0)) == std::vector<std::int64_t>{0, 1, 2, 3});
  REQUIRE(to_vec(t.at("verifier_last_hidden_states").select(1, 0)) == std::vector<std::int64_t>{1, 2, 3, 4});
  // [quirk] the mask of the input token x_{i+1}
  REQUIRE(to_vec(t.at("loss_mask")) == std::vector<std::int64_t>{0, 1, 1, 1});
  REQUIRE(to_vec(t.at("position_ids")) == std::vector<std::int64_t>{1, 2, 3, 4});
  REQUIRE(out->length() == 4);
  REQUIRE(t.size() == 5);
}

TEST_CASE("shift_batch: MRoPE positions shift along the sequence axis", "[eagle3][data]") {
  auto s = raw_sample(5);
  s.tensors["position_ids"] = torch::arange(15, torch::kLong).reshape({3, 5});
  const auto out = shift_batch(s);
  REQUIRE(out->tensors.at("position_ids").sizes() == torch::IntArrayRef({3, 4}));
  REQUIRE(to_vec(out->tensors.at("position_ids")[1]) == std::vector<std::int64_t>{6, 7, 8, 9});
}

TEST_CASE("shift_batch: short and malformed samples", "[eagle3][data]") {
  REQUIRE_FALSE(shift_batch(raw_sample(1)).has_value());
  auto missing = raw_sample(5);
  missing.tensors.erase("verifier_last_hidden_states");
  REQUIRE_THROWS_WITH(shift_batch(missing), Catch::Contains("verifier_last_hidden_states"));
  auto mismatched = raw_sample(5);
  mismatched.tensors["hidden_states"] = torch::zeros({4, 6});
  REQUIRE_THROWS_AS(shift_batch(mismatched), Error);
}

TEST_CASE("accuracy chain: the reference's test_metrics.py two-step example", "[eagle3][metrics]") {
  auto prev = torch::ones({4}, torch::kBool);
  const auto mask = torch::ones({4}, torch::kLong);
  auto a = accuracy_step(torch::tensor({1, 2, 3, 0}), torch::tensor({1, 2, 3, 4}), mask, prev);
  REQUIRE(a.full_correct.item<double>() == 3);
  REQUIRE(a.full_total.item<double>() == 4);
  REQUIRE(a.cond_correct.item<double>() == 3);
  REQUIRE(a.cond_total.item<double>() == 4);
  REQUIRE(to_vec(prev) == std::vector<std::int64_t>{1, 1, 1, 0});
  auto b = accuracy_step(torch::tensor({1, 2, 0, 4}), torch::tensor({1, 2, 5, 4}), mask, prev);
  REQUIRE(b.full_correct.item<double>() == 2);
  REQUIRE(b.full_total.item<double>() == 4);
  REQUIRE(b.cond_correct.item<double>() == 2);
  REQUIRE(b.cond_total.item<double>() == 3);
  REQUIRE(to_vec(prev) == std::vector<std::int64_t>{1, 1, 0, 0});
}

TEST_CASE("accuracy: the loss mask limits full_acc, not the chain count", "[eagle3][metrics]") {
  auto prev = torch::tensor({1, 1, 1, 0}).to(torch::kBool);
  const auto a = accuracy_step(torch::tensor({5, 6, 7, 8}), torch::tensor({5, 6, 0, 8}), torch::tensor({1, 0, 1, 1}), prev);
  REQUIRE(a.full_correct.item<double>() == 1);  // position 0 only (1 is masked, 2 wrong, 3 broken)
  REQUIRE(a.full_total.item<double>() == 3);
  REQUIRE(a.cond_total.item<double>() == 3);    // chains alive before this step, not re-masked
}

TEST_CASE("step k aligns logits[:L-k] with targets[k:] and mask[k:]", "[eagle3][metrics]") {
  // L = 4, Vd = 3. Step 1: logits rows 0..2 against target rows 1..3 and mask[1:].
  const auto onehot = [](std::vector<std::int64_t> ids) {
    return torch::one_hot(torch::tensor(ids, torch::kLong), 3).to(torch::kFloat) * 10;
  };
  const auto logits = onehot({2, 1, 0, 0});   // argmax 2, 1, 0, (0)
  const auto targets = onehot({0, 2, 1, 1});  // step-1 targets: 2, 1, 1
  const auto mask = torch::tensor({0, 1, 1, 0});
  auto prev = mask.ne(0);  // [F, T, T, F]
  const auto spec = nn::parse_loss_fn("kl_div");
  const auto out = step_loss_and_metrics(logits, targets, mask, prev, 1, 0.5, spec, 2);
  // Chains 0..2: correct [T, T, F]; prev[:3] = [F, T, T] -> [F, T, F]; mask[1:] = [1, 1, 0].
  REQUIRE(out.metrics.at("full_acc_1_sum").item<double>() == 1);
  REQUIRE(out.metrics.at("full_acc_1_total").item<double>() == 2);
  REQUIRE(out.metrics.at("cond_acc_1_total").item<double>() == 2);
  REQUIRE(to_vec(prev) == std::vector<std::int64_t>{0, 1, 0, 0});
  // Loss: rows 0 and 1 are matched (KL of equal sharp distributions = 0), weighted by 0.5^1.
  const auto expected = nn::reference_divergence(logits.slice(0, 0, 3), targets.slice(0, 1, 4), nn::Divergence::kKlDiv);
  const double value = 0.5 * (expected[0].item<double>() + expected[1].item<double>()) / (2 + 1e-5);
  REQUIRE(out.loss.item<double>() == Approx(value).margin(1e-7));
  REQUIRE(out.metrics.at("loss_1_sum").item<double>() == Approx(value).margin(1e-7));
  REQUIRE(out.metrics.at("loss_1_total").item<double>() == 1);
  REQUIRE(out.metrics.count("kl_div_loss_1_sum") == 0);
}

TEST_CASE("multi-term losses report each term per step", "[eagle3][metrics]") {
  auto prev = torch::ones({5}, torch::kBool);
  const auto out = step_loss_and_metrics(torch::randn({5, 4}), torch::randn({5, 4}), torch::ones({5}), prev, 2, 1.0,
                                         nn::parse_loss_fn("{\"ce\": 0.1, \"tv\": 0.9}"), 2);
  for (const char* key : {"ce_loss_2_sum", "ce_loss_2_total", "tv_loss_2_sum", "tv_loss_2_total"}) {
    REQUIRE(out.metrics.count(key) == 1);
  }
  const double combined = 0.1 * out.metrics.at("ce_loss_2_sum").item<double>() + 0.9 * out.metrics.at("tv_loss_2_sum").item<double>();
  REQUIRE(out.loss.item<double>() == Approx(combined).epsilon(1e-6));
}
