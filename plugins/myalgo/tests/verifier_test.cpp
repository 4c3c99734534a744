// myalgo against the SDK's real verifier model: the frozen pieces copied from a saved verifier
// turn its last hidden state into its own logits, and a batch built from its features (as the
// host's online source builds it) trains.
#include <catch2/catch.hpp>

#include "myalgo.h"
#include "speculators/verifier.h"
#include "test_util.h"

using namespace speculators;
using namespace speculators::myalgo;

namespace {

struct Fixture {
  test::TempDir dir{"myalgo-verifier"};
  VerifierModel verifier{nullptr};
  std::shared_ptr<MyAlgoModel> draft;

  explicit Fixture(std::int64_t draft_vocab = 0) {
    TransformerConfig config = test::tiny_transformer();
    config.num_hidden_layers = 4;
    config.layer_types.assign(4, "full_attention");
    torch::manual_seed(9);
    verifier = VerifierModel(config);
    {
      torch::NoGradGuard no_grad;  // a final norm that is not all ones, so that copying it matters
      verifier->norm->weight.copy_(1.0 + 0.2 * torch::randn({config.hidden_size}));
    }
    save_verifier(*verifier, dir.str());

    BuildContext ctx;
    ctx.verifier = TransformerConfig::from_file(dir.str() + "/config.json");
    ctx.verifier_path = dir.str();
    ctx.verifier_name = "tiny";
    Json args = Json::object({{"block_size", 3}, {"head_loss_decay", 0.8}});
    if (draft_vocab > 0) {
      args["draft_vocab_size"] = draft_vocab;
      ctx.vocab.t2d = torch::zeros({config.vocab_size}, torch::kBool);
      ctx.vocab.t2d.slice(0, 0, draft_vocab).fill_(true);  // the first draft_vocab ids
      ctx.vocab.d2t = torch::zeros({draft_vocab}, torch::kInt64);
    }
    ctx.args = Args(args);
    draft = std::dynamic_pointer_cast<MyAlgoModel>(MyAlgo().from_training_args(ctx));
    REQUIRE(draft);
  }

  // What the host hands forward for one packed row of two documents.
  Batch batch() {
    const auto ids = torch::randint(0, 32, {1, 10}, torch::kInt64);
    const auto positions = torch::tensor({0, 1, 2, 3, 4, 5, 0, 1, 2, 3}, torch::kInt64).unsqueeze(0);
    const auto docs = torch::tensor({0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, torch::kInt64);
    auto layer_ids = draft->target_layer_ids();
    layer_ids.push_back(verifier->config().num_hidden_layers);
    torch::NoGradGuard no_grad;
    auto out = verifier->forward(ids, positions, docs, layer_ids, /*want_logits=*/true);
    Batch b;
    b["input_ids"] = ids;
    const std::vector<torch::Tensor> aux(out.hidden_states.begin(), out.hidden_states.end() - 1);
    b["hidden_states"] = torch::cat(aux, -1);
    b["verifier_last_hidden_states"] = out.hidden_states.back();
    b["loss_mask"] = torch::ones({1, 10}, torch::kInt64);
    b["position_ids"] = positions;
    b["document_ids"] = docs.unsqueeze(0);
    b["logits"] = out.logits;  // for the test only; forward ignores keys it does not use
    return b;
  }
};

}  // namespace

TEST_CASE("the copied verifier norm and lm_head reproduce the verifier's logits", "[myalgo][verifier]") {
  Fixture f;
  Batch b = f.batch();
  auto logits = f.draft->verifier_logits(b["verifier_last_hidden_states"]);
  CHECK(torch::allclose(logits, b["logits"], 1e-5, 1e-5));
}

TEST_CASE("with a reduced vocabulary the targets are the verifier's logits on those rows", "[myalgo][verifier]") {
  Fixture f(/*draft_vocab=*/8);
  Batch b = f.batch();
  auto logits = f.draft->verifier_logits(b["verifier_last_hidden_states"]);
  CHECK(torch::allclose(logits, b["logits"].slice(-1, 0, 8), 1e-5, 1e-5));
}

TEST_CASE("a batch of real verifier features trains", "[myalgo][verifier][train]") {
  Fixture f;
  Batch b = f.batch();
  std::vector<torch::Tensor> params;
  for (auto& p : f.draft->parameters())
    if (p.requires_grad()) params.push_back(p);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-2));
  const Json call_args = MyAlgo().trainer_kwargs(Args(Json::object())).first;
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 20; ++step) {
    optimizer.zero_grad();
    ForwardResult r = f.draft->forward(b, call_args);
    r.loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = r.loss.item<double>();
  }
  INFO("first " << first << " last " << last);
  CHECK(last < first);
}
