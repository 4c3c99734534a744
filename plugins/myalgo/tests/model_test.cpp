// The myalgo draft model: shapes, the loss of forward against the loop definition, frozen parts,
// learning on a fixed batch, the vocab mapping, the verifier's tensors and bad batches.
#include <catch2/catch.hpp>

#include <set>

#include "model.h"
#include "speculators/error.h"
#include "test_util.h"

using namespace speculators;
using namespace speculators::myalgo;

namespace {

constexpr std::int64_t kHidden = 16;
constexpr std::int64_t kAuxWidth = 2 * kHidden;  // tiny_config has two aux layers

std::set<std::string> keys_of(const TensorMap& map) {
  std::set<std::string> keys;
  for (const auto& kv : map) keys.insert(kv.first);
  return keys;
}

// A reduced vocabulary of 8 tokens out of 32 (d2t holds offsets).
VocabMapping mapping_of(const std::vector<std::int64_t>& selected, std::int64_t vocab) {
  VocabMapping m;
  auto ids = torch::tensor(selected, torch::kInt64);
  m.t2d = torch::zeros({vocab}, torch::kBool);
  m.t2d.index_put_({ids}, true);
  m.d2t = ids - torch::arange(static_cast<std::int64_t>(selected.size()), torch::kInt64);
  return m;
}

const std::vector<std::int64_t> kSelected = {1, 3, 4, 8, 10, 17, 20, 31};

}  // namespace

TEST_CASE("shapes of the draft's pieces and of forward", "[myalgo][model]") {
  MyAlgoModel model(test::tiny_config(3));
  test::fill_frozen(model);
  Batch batch = test::tiny_batch(kAuxWidth, kHidden);

  auto x = model.draft_states(batch);
  CHECK(x.sizes().vec() == std::vector<std::int64_t>({1, 12, kHidden}));
  auto logits = model.head_logits(x);
  REQUIRE(logits.size() == 3);
  for (const auto& l : logits) CHECK(l.sizes().vec() == std::vector<std::int64_t>({1, 12, 32}));
  auto targets = model.verifier_logits(batch["verifier_last_hidden_states"]);
  CHECK(targets.sizes().vec() == std::vector<std::int64_t>({1, 12, 32}));
  CHECK(!targets.requires_grad());

  ForwardResult result = model.forward(batch, Json::object({{"head_loss_decay", 0.8}}));
  CHECK(result.loss.dim() == 0);
  CHECK(result.loss.requires_grad());
  REQUIRE(result.output.size() == 3);
  for (const auto& o : result.output) {
    CHECK(o.sizes().vec() == std::vector<std::int64_t>({1, 12}));
    CHECK(o.scalar_type() == torch::kInt64);
  }
  CHECK(keys_of(result.metrics) ==
        std::set<std::string>{"loss_sum", "loss_total", "acc_1_sum", "acc_1_total", "acc_2_sum", "acc_2_total",
                              "acc_3_sum", "acc_3_total", "full_acc_1_sum", "full_acc_1_total", "full_acc_2_sum",
                              "full_acc_2_total", "full_acc_3_sum", "full_acc_3_total"});
  CHECK(model.layers()->size() == 1);
  CHECK(model.target_layer_ids() == std::vector<std::int64_t>{1, 2});
  CHECK(model.embed_tokens() != nullptr);
  CHECK(model.lm_head() != nullptr);
}

TEST_CASE("forward's loss is the loop definition over the heads and the verifier", "[myalgo][model]") {
  MyAlgoModel model(test::tiny_config(3));
  test::fill_frozen(model);
  Batch batch = test::tiny_batch(kAuxWidth, kHidden);
  ForwardResult result = model.forward(batch, Json::object({{"head_loss_decay", 0.5}}));

  // Targets written out: the verifier's final RMSNorm (weight 1 here) and its lm_head.
  auto last = batch["verifier_last_hidden_states"][0];
  auto normed = last * torch::rsqrt(last.pow(2).mean(-1, true) + 1e-6);
  auto head_weight = std::dynamic_pointer_cast<torch::nn::LinearImpl>(model.lm_head())->weight;
  auto targets = torch::matmul(normed, head_weight.t());
  std::vector<torch::Tensor> heads;
  for (const auto& l : model.head_logits(model.draft_states(batch))) heads.push_back(l[0]);
  const double expected = test::loop_loss(heads, targets, batch["loss_mask"][0], batch["document_ids"][0], 0.5);
  CHECK(result.loss.item<double>() == Approx(expected).epsilon(1e-4));
}

TEST_CASE("a fresh model's heads are the identity", "[myalgo][model]") {
  MyAlgoModel model(test::tiny_config(2));
  auto x = torch::randn({1, 5, kHidden});
  for (const auto& head : *model.heads()) CHECK(torch::allclose(head->as<ResidualHeadImpl>()->forward(x), x));
}

TEST_CASE("the frozen verifier parts get no gradient", "[myalgo][model]") {
  MyAlgoModel model(test::tiny_config(3));
  test::fill_frozen(model);
  model.forward(test::tiny_batch(kAuxWidth, kHidden), Json::object()).loss.backward();

  const std::set<std::string> frozen = {"lm_head.weight", "verifier_norm.weight", "embed_tokens.weight"};
  std::size_t trainable = 0;
  for (const auto& p : model.named_parameters()) {
    if (frozen.count(p.key())) {
      CHECK(!p.value().requires_grad());
      CHECK(!p.value().grad().defined());
    } else {
      INFO(p.key());
      CHECK(p.value().requires_grad());
      CHECK(p.value().grad().defined());
      ++trainable;
    }
  }
  CHECK(trainable > 0);
  CHECK(model.fc()->weight.grad().abs().sum().item<double>() > 0.0);
}

TEST_CASE("a few optimizer steps on a fixed batch reduce the loss", "[myalgo][model][train]") {
  torch::manual_seed(21);
  MyAlgoModel model(test::tiny_config(2));
  test::fill_frozen(model);
  Batch batch = test::tiny_batch(kAuxWidth, kHidden);
  std::vector<torch::Tensor> params;
  for (auto& p : model.parameters())
    if (p.requires_grad()) params.push_back(p);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-2));

  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    auto loss = model.forward(batch, Json::object()).loss;
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  INFO("first " << first << " last " << last);
  CHECK(last < 0.5 * first);
}

TEST_CASE("a reduced vocabulary uses the verifier's lm_head rows via t2d", "[myalgo][model][vocab]") {
  test::TempDir dir("myalgo-vocab");
  auto tensors = test::write_verifier_dir(dir.str(), test::tiny_transformer());
  MyAlgoModel model(test::tiny_config(2, 8));
  const VocabMapping mapping = mapping_of(kSelected, 32);
  model.set_vocab_mapping(mapping);
  model.load_verifier_weights(dir.str());

  auto head_weight = std::dynamic_pointer_cast<torch::nn::LinearImpl>(model.lm_head())->weight;
  CHECK(torch::equal(head_weight, tensors["lm_head.weight"].index({mapping.t2d})));
  auto embed = std::dynamic_pointer_cast<torch::nn::EmbeddingImpl>(model.embed_tokens())->weight;
  CHECK(torch::equal(embed, tensors["model.embed_tokens.weight"]));
  CHECK(torch::equal(model.verifier_norm()->weight, tensors["model.norm.weight"]));

  auto buffers = model.named_buffers();
  REQUIRE(buffers.contains("d2t"));
  CHECK(torch::equal(buffers["d2t"], mapping.d2t));
  CHECK(torch::equal(buffers["t2d"], mapping.t2d));
  CHECK(model.config_json().at("draft_vocab_size").as_int() == 8);

  // Proposals come back in verifier token ids.
  ForwardResult result = model.forward(test::tiny_batch(kAuxWidth, kHidden), Json::object());
  const std::set<std::int64_t> allowed(kSelected.begin(), kSelected.end());
  for (const auto& o : result.output)
    for (std::int64_t i = 0; i < o.size(1); ++i) CHECK(allowed.count(o[0][i].item<std::int64_t>()) == 1);
}

TEST_CASE("a tied verifier lends its embedding as lm_head", "[myalgo][model]") {
  test::TempDir dir("myalgo-tied");
  auto tensors = test::write_verifier_dir(dir.str(), test::tiny_transformer(), /*tied=*/true);
  MyAlgoModel model(test::tiny_config(2));
  model.load_verifier_weights(dir.str());
  auto head_weight = std::dynamic_pointer_cast<torch::nn::LinearImpl>(model.lm_head())->weight;
  CHECK(torch::equal(head_weight, tensors["model.embed_tokens.weight"]));
  CHECK(!head_weight.requires_grad());
}

TEST_CASE("bad vocab mappings are reported", "[myalgo][model][vocab][errors]") {
  MyAlgoModel model(test::tiny_config(2, 8));
  CHECK_THROWS_WITH(model.set_vocab_mapping(VocabMapping{}), Catch::Contains("needs a vocab mapping"));

  VocabMapping short_t2d = mapping_of(kSelected, 32);
  short_t2d.t2d = short_t2d.t2d.slice(0, 0, 30);
  CHECK_THROWS_WITH(model.set_vocab_mapping(short_t2d), Catch::Contains("t2d has shape"));

  VocabMapping too_many = mapping_of(kSelected, 32);
  too_many.t2d[0] = true;
  CHECK_THROWS_WITH(model.set_vocab_mapping(too_many), Catch::Contains("t2d selects 9 tokens"));

  VocabMapping short_d2t = mapping_of(kSelected, 32);
  short_d2t.d2t = short_d2t.d2t.slice(0, 0, 7);
  CHECK_THROWS_WITH(model.set_vocab_mapping(short_d2t), Catch::Contains("d2t has shape"));

  VocabMapping inconsistent = mapping_of(kSelected, 32);
  inconsistent.d2t[0] = 5;
  CHECK_THROWS_WITH(model.set_vocab_mapping(inconsistent), Catch::Contains("different token sets"));
}

TEST_CASE("a verifier checkpoint without the needed tensors is reported", "[myalgo][model][errors]") {
  test::TempDir dir("myalgo-badverifier");
  const TransformerConfig config = test::tiny_transformer();
  write_file_atomic(dir.str() + "/config.json", config.to_hf_json().dump_python());
  save_safetensors(dir.str() + "/model.safetensors", {{"model.embed_tokens.weight", torch::randn({32, kHidden})}});
  MyAlgoModel model(test::tiny_config(2));
  CHECK_THROWS_WITH(model.load_verifier_weights(dir.str()), Catch::Contains("model.norm.weight"));

  save_safetensors(dir.str() + "/model.safetensors", {{"model.embed_tokens.weight", torch::randn({32, kHidden})},
                                                      {"lm_head.weight", torch::randn({31, kHidden})},
                                                      {"model.norm.weight", torch::ones({kHidden})}});
  CHECK_THROWS_WITH(model.load_verifier_weights(dir.str()),
                    Catch::Contains("lm_head.weight") && Catch::Contains(dir.str()));
}

TEST_CASE("a batch without a needed key or of the wrong width is reported", "[myalgo][model][errors]") {
  MyAlgoModel model(test::tiny_config(2));
  test::fill_frozen(model);
  Batch no_docs = test::tiny_batch(kAuxWidth, kHidden);
  no_docs.erase("document_ids");
  CHECK_THROWS_WITH(model.forward(no_docs, Json::object()), Catch::Contains("\"document_ids\""));
  Batch narrow = test::tiny_batch(kAuxWidth, kHidden);
  narrow["hidden_states"] = torch::randn({1, 12, kHidden});
  CHECK_THROWS_WITH(model.forward(narrow, Json::object()),
                    Catch::Contains("hidden_states") && Catch::Contains("expected [1, L, 32]"));
}

TEST_CASE("proposals are heads 2..k+1 at the last accepted position, as forward computes them",
          "[myalgo][model][proposer]") {
  MyAlgoModel model(test::tiny_config(/*block_size=*/4));
  test::fill_frozen(model);
  torch::manual_seed(9);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model.parameters()) {
      if (p.requires_grad()) p.add_(torch::randn_like(p) * 0.3);
    }
  }
  model.eval();
  const std::int64_t n = 9, width = model.fc()->weight.size(1), H = 16;
  const auto features = torch::randn({n, width});
  const auto last = torch::randn({n, H});
  const auto next = torch::randint(0, 32, {n}, torch::kLong);

  auto proposer = model.make_proposer();
  REQUIRE(proposer);
  proposer->extend(features.slice(0, 0, 6), last.slice(0, 0, 6), next.slice(0, 0, 6));
  proposer->extend(features.slice(0, 6, n), last.slice(0, 6, n), next.slice(0, 6, n));
  REQUIRE(proposer->length() == n);
  const auto proposals = proposer->propose(5);
  REQUIRE(proposals.size() == 3);  // block_size 4: heads 2, 3, 4

  Batch batch;
  batch["hidden_states"] = features.unsqueeze(0);
  batch["verifier_last_hidden_states"] = last.unsqueeze(0);
  batch["input_ids"] = next.unsqueeze(0);
  batch["loss_mask"] = torch::ones({1, n}, torch::kLong);
  batch["position_ids"] = torch::arange(n, torch::kLong).unsqueeze(0);
  batch["document_ids"] = torch::zeros({1, n}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto out = model.forward(batch, Json());
  for (std::size_t j = 1; j < 4; ++j) {
    INFO("head " << j + 1);
    CHECK(out.output[j][0][n - 1].item<std::int64_t>() == proposals[j - 1]);
  }
  CHECK(proposer->propose(1).size() == 1);
  CHECK_THROWS_WITH(model.make_proposer()->propose(2), Catch::Contains("before any extend"));
}
