// Trainer on a tiny in-memory draft: one real optimizer step, its logged loss and the weights it
// leaves, each against a computation of its own here (float64: cross entropy written out, then
// torch's AdamW first step, p(1 - lr wd) - lr g / (|g| + eps)); a non-finite loss skips the step
// and leaves the weights as they were; the epoch-end checkpoint holds the trained weights.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "../data/data_util.h"
#include "data/loader.h"
#include "speculators/communicator.h"
#include "speculators/tensor_io.h"
#include "tools/job.h"
#include "train/train_options.h"
#include "train/trainer.h"

using namespace speculators;
using namespace speculators::test;

namespace {

constexpr std::int64_t kV = 11, kH = 6;

// logits = lm_head(tanh(layers[0](hidden_states))); loss = mean cross entropy of input_ids over
// the loss_mask positions. Each batch it is given is kept, so the test can recompute the step.
class TinyDraft : public DraftModel {
 public:
  TinyDraft() {
    torch::manual_seed(3);
    embed_ = register_module("embed_tokens", torch::nn::Embedding(kV, kH));
    embed_->weight.set_requires_grad(false);
    layers_ = register_module("layers", torch::nn::ModuleList());
    layers_->push_back(torch::nn::Linear(torch::nn::LinearOptions(kH, kH).bias(false)));
    head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(kH, kV).bias(false)));
  }
  torch::nn::ModuleList layers() override { return layers_; }
  std::shared_ptr<torch::nn::Module> embed_tokens() override { return embed_.ptr(); }
  std::shared_ptr<torch::nn::Module> lm_head() override { return head_.ptr(); }
  std::vector<std::int64_t> target_layer_ids() const override { return {1}; }
  Json config_json() const override { return Json::object({{"speculators_model_type", "tiny"}}); }

  ForwardResult forward(const Batch& batch, const Json&) override {
    Batch copy;
    for (const auto& [k, t] : batch) copy[k] = t.clone();
    seen.push_back(copy);
    auto x = torch::tanh(layers_[0]->as<torch::nn::Linear>()->forward(batch.at("hidden_states")));
    auto logits = head_->forward(x).view({-1, kV});
    auto nll = torch::nn::functional::cross_entropy(
        logits, batch.at("input_ids").view({-1}), torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto mask = batch.at("loss_mask").view({-1}).to(torch::kFloat32);
    auto sum = (nll * mask).sum(), total = mask.sum();
    ForwardResult r;
    r.loss = sum / total;
    if (poison) r.loss = r.loss * std::nan("");
    r.metrics = {{"loss_sum", sum.detach()}, {"loss_total", total}};
    return r;
  }

  std::vector<Batch> seen;
  bool poison = false;

 private:
  torch::nn::Embedding embed_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::Linear head_{nullptr};
};

// Two rows of 6 tokens: one packed row of 16 per epoch, so one optimizer step.
std::vector<Sample> two_rows() {
  torch::manual_seed(7);
  std::vector<Sample> out;
  for (int r = 0; r < 2; ++r) {
    Sample s;
    s.tensors["input_ids"] = torch::randint(0, kV, {6}, torch::kInt64);
    s.tensors["loss_mask"] = torch::tensor({0, 1, 1, 0, 1, 1}, torch::kInt64);
    s.tensors["position_ids"] = torch::arange(6, torch::kInt64);
    s.tensors["hidden_states"] = torch::randn({6, kH});
    out.push_back(std::move(s));
  }
  return out;
}

TrainOptions options_for(const std::string& save_path) {
  Args job = Args(Json::object({{"optimizer", "adamw"},
                                {"lr", 0.01},
                                {"weight_decay", 0.1},
                                {"max_grad_norm", 1e9},  // no clipping
                                {"scheduler_type", "none"},
                                {"epochs", 1},
                                {"total_seq_len", 16},
                                {"save_path", save_path},
                                {"logger", ""}}))
                 .with_defaults(host_schema());
  return TrainOptions::from_args(job);
}

// The batch's loss under weights (w1, w2), in float64: sum over supervised positions of
// logsumexp(z) - z[target], over their count.
torch::Tensor reference_loss(const Batch& batch, const torch::Tensor& w1, const torch::Tensor& w2) {
  const auto h = batch.at("hidden_states").view({-1, kH}).to(torch::kFloat64);
  const auto ids = batch.at("input_ids").view({-1});
  const auto mask = batch.at("loss_mask").view({-1});
  torch::Tensor sum = torch::zeros({}, torch::kFloat64);
  std::int64_t count = 0;
  for (std::int64_t t = 0; t < h.size(0); ++t) {
    if (mask[t].item<std::int64_t>() == 0) continue;
    const auto z = torch::mv(w2, torch::tanh(torch::mv(w1, h[t])));
    sum = sum + (torch::logsumexp(z, 0) - z[ids[t].item<std::int64_t>()]);
    ++count;
  }
  return sum / static_cast<double>(count);
}

struct Weights {
  torch::Tensor w1, w2, embed;
};
Weights weights_of(TinyDraft& m) {
  auto p = m.named_parameters();
  return {p["layers.0.weight"].detach().clone(), p["lm_head.weight"].detach().clone(),
          p["embed_tokens.weight"].detach().clone()};
}

// One run of the Trainer on the two rows, saving under a fresh directory (removed afterwards).
struct OneRun {
  explicit OneRun(const std::string& name, bool poison = false)
      : save(scratch_dir(name)), options(options_for(save)), source(two_rows()),
        train(source, algorithm, {0, 1}, options.data.total_seq_len, 0.0, 1, true) {
    model->poison = poison;
    before = weights_of(*model);
  }
  ~OneRun() { std::filesystem::remove_all(save); }
  TrainSummary run() {
    auto comm = make_local_communicator();
    return Trainer(options, algorithm, model, train, nullptr, *comm).run();
  }
  std::string save;
  TrainOptions options;
  IdentityAlgorithm algorithm;
  VectorSource source;
  Loader train;
  std::shared_ptr<TinyDraft> model = std::make_shared<TinyDraft>();
  Weights before;
};

}  // namespace

TEST_CASE("one step: the logged loss and the AdamW update, computed here", "[trainer]") {
  OneRun one("trainer_one_step");
  REQUIRE(one.train.num_batches() == 1);
  const TrainSummary summary = one.run();
  const auto& model = one.model;
  const Weights& before = one.before;
  const std::string& save = one.save;
  REQUIRE(summary.global_step == 1);
  CHECK(summary.skipped_steps == 0);
  REQUIRE(model->seen.size() == 1);
  const Batch& batch = model->seen[0];
  CHECK(batch.at("loss_mask").sum().item<std::int64_t>() == 8);  // both rows packed, padding unsupervised

  // The logged loss: the step's loss before its update.
  auto w1 = before.w1.to(torch::kFloat64).requires_grad_(true), w2 = before.w2.to(torch::kFloat64).requires_grad_(true);
  const auto loss = reference_loss(batch, w1, w2);
  CHECK(summary.last_train.at("loss") == Approx(loss.item<double>()).epsilon(1e-6));

  // The weights after it: torch's AdamW, step 1 (bias-corrected moments are g and g^2).
  loss.backward();
  const double lr = 0.01, wd = 0.1, eps = 1e-8;
  const Weights after = weights_of(*model);
  auto expected = [&](const torch::Tensor& p, const torch::Tensor& g) {
    return p.to(torch::kFloat64) * (1 - lr * wd) - lr * g / (g.abs() + eps);
  };
  CHECK(torch::allclose(after.w1.to(torch::kFloat64), expected(before.w1, w1.grad()), 0, 1e-6));
  CHECK(torch::allclose(after.w2.to(torch::kFloat64), expected(before.w2, w2.grad()), 0, 1e-6));
  CHECK(torch::equal(after.embed, before.embed));  // frozen

  // The epoch-end checkpoint holds these weights (fp32 in the optimizer state file).
  REQUIRE(summary.last_checkpoint == (std::filesystem::path(save) / "0").string());
  const auto saved = load_safetensors(summary.last_checkpoint + "/optimizer_state.safetensors");
  CHECK(torch::equal(saved.at("model/layers.0.weight"), after.w1));
  CHECK(torch::equal(saved.at("model/lm_head.weight"), after.w2));
}

TEST_CASE("a non-finite loss skips the step: the weights stay as they were", "[trainer]") {
  OneRun one("trainer_skip", /*poison=*/true);
  const TrainSummary summary = one.run();
  CHECK(summary.global_step == 1);
  CHECK(summary.skipped_steps == 1);
  const Weights after = weights_of(*one.model);
  CHECK(torch::equal(after.w1, one.before.w1));
  CHECK(torch::equal(after.w2, one.before.w2));
}
