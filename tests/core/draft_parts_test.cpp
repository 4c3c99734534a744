// The SDK's common draft parts against independent computations: the shifted target mask against
// its definition as a loop over positions, MetricPairs against sums counted by hand, the batch
// checks' messages, the verifier head loader against the tensors written to disk, and the
// speculators_config block against the reference's own SpeculatorsConfig (an oracle case that
// runs the reference in the test venv).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "speculators/batch.h"
#include "speculators/metric_pairs.h"
#include "speculators/nn/target_mask.h"
#include "speculators/speculators_config.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier_head.h"

using namespace speculators;

namespace {

// The mask's definition, one position at a time.
std::vector<bool> loop_mask(const std::vector<std::int64_t>& docs, const std::vector<std::int64_t>& mask,
                            std::int64_t shift) {
  const auto length = static_cast<std::int64_t>(docs.size());
  std::vector<bool> out;
  for (std::int64_t i = 0; i + shift < length; ++i) {
    bool ok = docs[i] != -1 && (mask.empty() || mask[i + shift] != 0);
    for (std::int64_t t = i; t <= i + shift; ++t) ok = ok && docs[t] == docs[i];
    out.push_back(ok);
  }
  return out;
}

std::vector<bool> to_bools(const torch::Tensor& t) {
  std::vector<bool> out;
  for (std::int64_t i = 0; i < t.size(0); ++i) out.push_back(t[i].item<bool>());
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("shifted_target_mask follows its definition on packed rows", "[draft_parts][mask]") {
  // Two documents, padding, and a document id that comes back after another document.
  const std::vector<std::int64_t> docs = {0, 0, 0, 0, 0, 1, 1, 1, 0, 0, -1, -1};
  const std::vector<std::int64_t> mask = {0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0};
  const auto docs_t = torch::tensor(docs, torch::kInt64);
  const auto mask_t = torch::tensor(mask, torch::kInt64);
  for (std::int64_t shift = 0; shift <= 13; ++shift) {
    INFO("shift " << shift);
    CHECK(to_bools(nn::shifted_target_mask(docs_t, mask_t, shift)) == loop_mask(docs, mask, shift));
    CHECK(to_bools(nn::shifted_target_mask(docs_t, torch::Tensor(), shift)) == loop_mask(docs, {}, shift));
  }
  // A [1, L] row gives the same as [L].
  CHECK(torch::equal(nn::shifted_target_mask(docs_t.unsqueeze(0), mask_t.unsqueeze(0), 2),
                     nn::shifted_target_mask(docs_t, mask_t, 2)));

  torch::manual_seed(11);
  for (int trial = 0; trial < 20; ++trial) {
    const std::int64_t length = 1 + torch::randint(0, 40, {1}).item<std::int64_t>();
    std::vector<std::int64_t> d, m;
    std::int64_t doc = 0;
    for (std::int64_t i = 0; i < length; ++i) {
      if (torch::rand({1}).item<double>() < 0.2) doc = torch::randint(-1, 4, {1}).item<std::int64_t>();
      d.push_back(doc);
      m.push_back(torch::rand({1}).item<double>() < 0.7 ? 1 : 0);
    }
    for (std::int64_t shift = 0; shift <= 5; ++shift) {
      INFO("trial " << trial << " shift " << shift);
      CHECK(to_bools(nn::shifted_target_mask(torch::tensor(d), torch::tensor(m), shift)) == loop_mask(d, m, shift));
    }
  }
  CHECK_THROWS_WITH(nn::shifted_target_mask(docs_t, mask_t, -1), Catch::Contains("shift must be >= 0"));
  CHECK_THROWS_WITH(nn::shifted_target_mask(docs_t, mask_t.slice(0, 0, 5), 1), Catch::Contains("loss_mask"));
}

TEST_CASE("MetricPairs sums pairs by name as 0-d float32 tensors", "[draft_parts][metrics]") {
  MetricPairs metrics;
  metrics.add_mean("loss", torch::tensor(2.5, torch::kFloat64));
  metrics.add_mean("loss", torch::tensor(0.5));
  const auto correct = torch::tensor({1, 0, 1, 1, 0}).to(torch::kBool);
  const auto mask = torch::tensor({1, 1, 0, 1, 1});
  metrics.add_count("acc", correct, mask);   // correct and in the mask: positions 0, 3 -> 2 of 4
  metrics.add_count("acc", ~correct, mask);  // the others: positions 1, 4 -> 2 of 4
  metrics.add("x", torch::tensor(3), torch::tensor(7));
  TensorMap extra = {{"x_sum", torch::tensor(1.0)}, {"x_total", torch::tensor(1.0)}, {"y", torch::tensor(4.0)}};
  metrics.add_all(extra);

  const TensorMap out = metrics.take();
  CHECK(metrics.map().empty());
  std::vector<std::string> keys;
  for (const auto& kv : out) {
    keys.push_back(kv.first);
    CHECK(kv.second.dim() == 0);
    CHECK(kv.second.scalar_type() == torch::kFloat32);
    CHECK_FALSE(kv.second.requires_grad());
  }
  CHECK(keys == std::vector<std::string>{"acc_sum", "acc_total", "loss_sum", "loss_total", "x_sum", "x_total", "y"});
  CHECK(out.at("loss_sum").item<double>() == Approx(3.0));
  CHECK(out.at("loss_total").item<double>() == 2.0);
  CHECK(out.at("acc_sum").item<double>() == 4.0);
  CHECK(out.at("acc_total").item<double>() == 8.0);
  CHECK(out.at("x_sum").item<double>() == 4.0);
  CHECK(out.at("x_total").item<double>() == 8.0);
  CHECK(out.at("y").item<double>() == 4.0);

  // A loss with grad is stored detached; the loss itself keeps its graph.
  auto w = torch::ones({2}, torch::requires_grad());
  MetricPairs with_grad;
  with_grad.add_mean("loss", (w * 3).sum());
  CHECK_FALSE(with_grad.map().at("loss_sum").requires_grad());
  CHECK_THROWS_WITH(with_grad.add("z", torch::ones({2}), torch::ones({})), Catch::Contains("\"z_sum\""));
  CHECK_THROWS_WITH(with_grad.add_count("c", torch::ones({2}), torch::ones({3})), Catch::Contains("differ in shape"));
}

TEST_CASE("batch checks name the draft, the key and what the batch holds", "[draft_parts][batch]") {
  Batch batch;
  batch["input_ids"] = torch::zeros({1, 6}, torch::kInt64);
  batch["hidden_states"] = torch::zeros({1, 6, 8});
  CHECK(require_tensor(batch, "input_ids", "mydraft").size(1) == 6);
  CHECK_FALSE(optional_tensor(batch, "loss_mask").defined());
  CHECK(error_of([&] { require_tensor(batch, "loss_mask", "mydraft"); }) ==
        "mydraft: the batch has no \"loss_mask\" (it has: hidden_states, input_ids)");
  try {
    require_tensor(batch, "loss_mask", "mydraft");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
  }
  CHECK_NOTHROW(require_packed(batch, "hidden_states", "mydraft", 6, 8));
  CHECK_NOTHROW(require_packed(batch, "input_ids", "mydraft"));
  CHECK(error_of([&] { require_packed(batch, "hidden_states", "mydraft", -1, 16); }) ==
        "mydraft: batch \"hidden_states\" has shape [1, 6, 8], expected [1, L, 16]");
  CHECK(error_of([&] { check_packed(batch.at("input_ids"), "input_ids", "mydraft", 5); }) ==
        "mydraft: batch \"input_ids\" has shape [1, 6], expected [1, 5]");
}

TEST_CASE("load_verifier_head reads the tensors the verifier holds, tied or not", "[draft_parts][verifier]") {
  speculators::test::ScratchDir dir;
  torch::manual_seed(4);
  const auto embed = torch::randn({10, 4});
  const auto head = torch::randn({10, 4});
  const auto norm = torch::randn({4});
  save_safetensors(dir.file("model.safetensors"),
                   {{"model.embed_tokens.weight", embed}, {"lm_head.weight", head}, {"model.norm.weight", norm}});
  const VerifierHead loaded = load_verifier_head(dir.path(), 4, 10);
  CHECK(torch::equal(loaded.embed_tokens, embed));
  CHECK(torch::equal(loaded.lm_head, head));
  CHECK(torch::equal(loaded.norm, norm));

  // The draft rows: the rows t2d selects, in ascending id, gathered one by one here.
  auto t2d = torch::zeros({10}, torch::kBool);
  for (int id : {1, 4, 5, 9}) t2d[id] = true;
  const auto rows = loaded.lm_head_rows(t2d);
  REQUIRE(rows.sizes() == torch::IntArrayRef({4, 4}));
  int r = 0;
  for (int id : {1, 4, 5, 9}) CHECK(torch::equal(rows[r++], head[id]));
  CHECK(torch::equal(loaded.lm_head_rows(torch::Tensor()), head));

  // Tied: no lm_head.weight, the embedding serves as the head.
  speculators::test::ScratchDir tied;
  save_safetensors(tied.file("model.safetensors"), {{"model.embed_tokens.weight", embed}, {"model.norm.weight", norm}});
  CHECK(torch::equal(load_verifier_head(tied.path(), 4, 10).lm_head, embed));

  // Errors name the directory and the tensor.
  CHECK(error_of([&] { load_verifier_head(dir.path(), 4, 12); }) ==
        dir.path() + ": verifier tensor embed_tokens.weight has shape [10, 4], expected [12, 4]");
  speculators::test::ScratchDir no_norm;
  save_safetensors(no_norm.file("model.safetensors"), {{"model.embed_tokens.weight", embed}});
  CHECK(error_of([&] { load_verifier_head(no_norm.path(), 4, 10); }) ==
        no_norm.path() + ": the verifier checkpoint has no model.norm.weight");

  auto frozen = torch::zeros({4}, torch::requires_grad());
  copy_frozen(frozen, norm);
  CHECK(torch::equal(frozen, norm));
  CHECK_FALSE(frozen.requires_grad());
}

TEST_CASE("the speculators_config block round-trips and reports wrong types", "[draft_parts][config]") {
  const SpeculatorsConfig block{"mydraft", 5, {"LlamaForCausalLM"}, "org/v"};
  Json config = Json::object({{"speculators_config", block.to_json()}});
  const SpeculatorsConfig back = SpeculatorsConfig::from_config_json(config, "c.json");
  CHECK(back.algorithm == "mydraft");
  CHECK(back.speculative_tokens == 5);
  CHECK(back.verifier_architectures == std::vector<std::string>{"LlamaForCausalLM"});
  CHECK(back.verifier_name_or_path == "org/v");
  CHECK(SpeculatorsConfig{"e", 3, {}, ""}.to_json().at("verifier").at("name_or_path").is_null());

  SpeculatorsConfig defaults;
  defaults.speculative_tokens = 3;
  CHECK(SpeculatorsConfig::from_config_json(Json::object(), "c.json", defaults).speculative_tokens == 3);
  Json bad = Json::parse(R"({"speculators_config": {"proposal_methods": [{"speculative_tokens": "five"}]}})");
  CHECK(error_of([&] { SpeculatorsConfig::from_config_json(bad, "c.json"); }) ==
        "c.json: speculators_config.proposal_methods[0].speculative_tokens must be an integer, got \"five\"");
  Json bad_verifier = Json::parse(R"({"speculators_config": {"verifier": {"name_or_path": 3}}})");
  CHECK_THROWS_WITH(SpeculatorsConfig::from_config_json(bad_verifier, "c.json"),
                    Catch::Contains("speculators_config.verifier.name_or_path"));
}

// Run by the ctest entry draft_parts_speculators_config_oracle, which sets SPECULATORS_TEST_PYTHON.
TEST_CASE("the speculators_config block is the reference's SpeculatorsConfig", "[.][speculators_config_oracle]") {
  const char* python = std::getenv("SPECULATORS_TEST_PYTHON");
  REQUIRE(python != nullptr);
  const std::string script =
      "from speculators.config import SpeculatorsConfig, VerifierConfig\n"
      "from speculators.proposals.greedy import GreedyTokenProposalConfig\n"
      "import json\n"
      "for name, k, path, archs in [('mydraft', 5, 'org/v', ['LlamaForCausalLM']), ('eagle3', 3, None, [])]:\n"
      "    c = SpeculatorsConfig(algorithm=name, default_proposal_method='greedy',\n"
      "        proposal_methods=[GreedyTokenProposalConfig(speculative_tokens=k)],\n"
      "        verifier=VerifierConfig(name_or_path=path, architectures=archs))\n"
      "    print(json.dumps(c.model_dump(), sort_keys=True))\n";
  speculators::test::ScratchDir dir;
  const std::string path = dir.file("oracle.py");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  std::FILE* pipe = ::popen((std::string(python) + " " + path).c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string text;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) text += buffer;
  REQUIRE(::pclose(pipe) == 0);
  const auto newline = text.find('\n');
  REQUIRE(newline != std::string::npos);
  const Json first = Json::parse(text.substr(0, newline), "oracle");
  const Json second = Json::parse(text.substr(newline + 1), "oracle");
  CHECK(SpeculatorsConfig{"mydraft", 5, {"LlamaForCausalLM"}, "org/v"}.to_json() == first);
  CHECK(SpeculatorsConfig{"eagle3", 3, {}, ""}.to_json() == second);
}
