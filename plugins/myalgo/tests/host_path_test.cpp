// myalgo driven by the host's own code through the SDK's plugin test helpers
// (speculators/testing/plugin_test.h): a batch packed by the host's loader, training steps by the
// host's Trainer, the checkpoint loaded back as speculators-eval loads it, and proposals checked by
// the host's speculative decoding loop against the verifier's greedy output.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "myalgo.h"
#include "speculators/testing/plugin_test.h"

using namespace speculators;
namespace st = speculators::testing;

TEST_CASE("myalgo through the host: a packed batch, training steps, a checkpoint, proposals", "[myalgo][host]") {
  st::TempDir dir("myalgo-host");
  const st::TinyVerifier verifier = st::make_tiny_verifier((dir.path() / "verifier").string());
  myalgo::MyAlgo algorithm;
  const std::vector<std::string> flags = {"--block-size", "3"};
  const BuildContext ctx = st::make_build_context(verifier, st::resolve_test_job(algorithm, flags));
  auto model = st::build_draft(algorithm, ctx);

  const Batch batch = st::make_batch(algorithm, verifier, model->target_layer_ids());
  for (const char* key : {"input_ids", "hidden_states", "verifier_last_hidden_states", "loss_mask", "position_ids",
                          "document_ids"}) {
    INFO(key);
    CHECK(batch.count(key) == 1);
  }
  const auto width = static_cast<std::int64_t>(model->target_layer_ids().size()) * verifier.config.hidden_size;
  CHECK(batch.at("hidden_states").size(2) == width);
  const ForwardResult result = model->forward(batch, algorithm.trainer_kwargs(ctx.args).first);
  CHECK(std::isfinite(result.loss.item<double>()));

  const st::TrainResult trained = st::train_steps(algorithm, verifier, (dir.path() / "save").string(), 2, flags);
  CHECK(trained.global_step == 2);
  CHECK(trained.train_metrics.count("acc_1") == 1);
  auto loaded = st::load_checkpoint(algorithm, verifier, trained.last_checkpoint);
  const st::ProposalResult proposed = st::propose(*loaded, verifier, {3, 1, 4, 1}, 12, 2);
  CHECK(proposed.speculative == proposed.greedy);
  CHECK(proposed.steps > 0);
}
