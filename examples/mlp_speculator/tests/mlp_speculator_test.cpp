// The MLP speculator's own tests, against the SDK's test helpers (speculators/testing/plugin_test.h):
// the stage and the loss written out by hand, a batch made by the host's loader, training steps
// through the host's Trainer, a checkpoint loaded back, and proposals that leave the verifier's
// greedy output unchanged.
#include <torch/torch.h>  // before Catch2: a LibTorch with glog defines its own CHECK
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "mlp_speculator.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/testing/plugin_test.h"

using namespace speculators;
using namespace speculators::mlp_speculator;
namespace st = speculators::testing;

namespace {

// One verifier for the whole binary: making it runs the verifier maker's calibration.
const st::TinyVerifier& verifier() {
  static st::TempDir dir("mlp-verifier");
  static const st::TinyVerifier v = st::make_tiny_verifier(dir.str());
  return v;
}

std::shared_ptr<MlpSpeculator> build(const std::vector<std::string>& flags = {"--n-predict", "3"}) {
  MlpAlgorithm algorithm;
  const BuildContext ctx = st::make_build_context(verifier(), st::resolve_test_job(algorithm, flags));
  return std::dynamic_pointer_cast<MlpSpeculator>(st::build_draft(algorithm, ctx));
}

double kl(const torch::Tensor& p_logits, const torch::Tensor& q_logits) {
  const auto p = torch::softmax(p_logits.to(torch::kFloat64), -1);
  const auto logq = torch::log_softmax(q_logits.to(torch::kFloat64), -1);
  return (p * (p.log() - logq)).sum().item<double>();
}

}  // namespace

TEST_CASE("a stage is IBM's formula", "[mlp_speculator]") {
  auto model = build();
  torch::NoGradGuard no_grad;
  const auto features = torch::randn({5, 32});
  const auto tokens = torch::randint(0, 64, {5}, torch::kLong);
  MlpStageImpl* s = model->stage(0);
  const double a = std::pow(0.5, 0.5 / 3.0);
  const double b = std::sqrt((1 - a * a) * 32 / 2.0);
  CHECK(s->state_weight == Approx(a));
  CHECK(s->emb_weight == Approx(b));
  // z_0 = RMSNorm(h) with the verifier's final norm, written out.
  const auto norm_w = model->named_parameters()["verifier_norm.weight"];
  const auto z0 = features * torch::rsqrt(features.pow(2).mean(-1, true) + 1e-6) * norm_w;
  CHECK(torch::allclose(model->initial_state(features), z0, 1e-5, 1e-5));
  const auto mixed = torch::matmul(z0, s->proj->weight.t()) * a + s->emb->weight.index({tokens}) * b;
  const auto mean = mixed.mean(-1, true);
  const auto var = (mixed - mean).pow(2).mean(-1, true);
  const auto expected = torch::gelu((mixed - mean) / torch::sqrt(var + 1e-5) * s->norm->weight + s->norm->bias);
  CHECK(torch::allclose(s->forward(z0, tokens), expected, 1e-5, 1e-5));
}

TEST_CASE("forward on a batch from the host's loader: the loss written out as loops", "[mlp_speculator]") {
  MlpAlgorithm algorithm;
  auto model = build();
  st::BatchOptions options;
  options.num_rows = 3;
  options.row_length = 10;
  options.total_len = 40;
  const Batch batch = st::make_batch(algorithm, verifier(), model->target_layer_ids(), options);
  // The state layer is the verifier's last: its features are the last hidden states.
  CHECK(torch::allclose(batch.at("hidden_states"), batch.at("verifier_last_hidden_states")));

  const ForwardResult result = model->forward(batch, Json::object());
  std::set<std::string> keys;
  for (const auto& kv : result.metrics) keys.insert(kv.first);
  const std::set<std::string> expected_keys = {"acc_1_sum", "acc_1_total", "acc_2_sum", "acc_2_total",
                                               "acc_3_sum", "acc_3_total", "loss_sum", "loss_total"};
  CHECK(keys == expected_keys);

  torch::NoGradGuard no_grad;
  const auto ids = batch.at("input_ids")[0];
  const auto docs = batch.at("document_ids")[0];
  const auto mask = batch.at("loss_mask")[0];
  const auto logits = model->stage_logits(batch.at("hidden_states")[0], ids);
  const auto targets = model->verifier_logits(batch.at("verifier_last_hidden_states")[0]);
  const std::int64_t L = ids.size(0);
  double expected = 0;
  for (std::int64_t k = 1; k <= 3; ++k) {
    double sum = 0, count = 0, correct = 0;
    for (std::int64_t i = 0; i + k + 1 < L; ++i) {
      bool ok = docs[i].item<std::int64_t>() != -1 && mask[i + k + 1].item<std::int64_t>() != 0;
      for (std::int64_t t = i; t <= i + k + 1; ++t) ok = ok && docs[t].item<std::int64_t>() == docs[i].item<std::int64_t>();
      if (!ok) continue;
      sum += kl(targets[i + k], logits[k - 1][i]);
      count += 1;
      correct += logits[k - 1][i].argmax().item<std::int64_t>() == targets[i + k].argmax().item<std::int64_t>();
    }
    REQUIRE(count > 0);
    expected += sum / (count + 1e-5);
    CHECK(result.metrics.at(cat("acc_", k, "_total")).item<double>() == count);
    CHECK(result.metrics.at(cat("acc_", k, "_sum")).item<double>() == correct);
  }
  CHECK(result.loss.item<double>() == Approx(expected).epsilon(1e-4));
  CHECK(result.metrics.at("loss_sum").item<double>() == Approx(expected).epsilon(1e-4));

  Batch missing = batch;
  missing.erase("loss_mask");
  CHECK_THROWS_WITH(model->forward(missing, Json()), Catch::Contains("mlp_speculator") && Catch::Contains("\"loss_mask\""));
}

TEST_CASE("training steps through the host's Trainer, then the checkpoint loads back", "[mlp_speculator][train]") {
  MlpAlgorithm algorithm;
  st::TempDir save("mlp-train");
  const st::TrainResult trained = st::train_steps(algorithm, verifier(), save.str(), 2, {"--n-predict", "2"});
  CHECK(trained.global_step == 2);
  REQUIRE(trained.train_metrics.count("loss"));
  CHECK(std::isfinite(trained.train_metrics.at("loss")));
  CHECK(trained.train_metrics.count("acc_2"));
  REQUIRE(std::filesystem::exists(std::filesystem::path(trained.last_checkpoint) / "model.safetensors"));

  auto loaded = st::load_checkpoint(algorithm, verifier(), trained.last_checkpoint);
  const Json config = loaded->config_json();
  CHECK(config.at("speculators_model_type").as_string() == "mlp_speculator");
  CHECK(config.at("speculators_config").at("proposal_methods").as_array()[0].at("speculative_tokens").as_int() == 2);
  // The frozen verifier tensors are not in the checkpoint: after_load read them from the verifier.
  CHECK_FALSE(torch::isnan(loaded->named_parameters()["verifier_head.weight"]).any().item<bool>());
}

TEST_CASE("proposals leave the verifier's greedy output unchanged", "[mlp_speculator][proposer]") {
  auto model = build();
  const st::ProposalResult r = st::propose(*model, verifier(), {1, 5, 9, 2}, 16, 3);
  CHECK(r.speculative == r.greedy);
  CHECK(r.greedy.size() == 16);
  CHECK(r.steps > 0);
  CHECK(r.acceptance_length >= 1.0);
  // At most n_predict tokens per step, and none before the first extend.
  auto proposer = model->make_proposer();
  CHECK_THROWS_WITH(proposer->propose(2), Catch::Contains("before any extend"));
  proposer->extend(torch::randn({2, 32}), torch::randn({2, 32}), torch::tensor({3, 4}, torch::kLong));
  CHECK(proposer->propose(10).size() == 3);
}

TEST_CASE("job mistakes are usage errors that name the option", "[mlp_speculator][errors]") {
  MlpAlgorithm algorithm;
  CHECK_THROWS_WITH(st::resolve_test_job(algorithm, {"--n-predict", "0"}), Catch::Contains("--n-predict"));
  try {
    build({"--target-layer-ids", "1"});
    FAIL("target_layer_ids other than the last layer were accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).find("target_layer_ids must be [2]") != std::string::npos);
  }
}

#ifdef SPECULATORS_TEST_PLUGIN_DIR
TEST_CASE("speculators-train finds and describes the built plugin", "[mlp_speculator][plugin]") {
  CHECK(st::run_speculators_train({"--plugin-dir", SPECULATORS_TEST_PLUGIN_DIR, "--describe", "mlp_speculator"}) == 0);
}
#endif
