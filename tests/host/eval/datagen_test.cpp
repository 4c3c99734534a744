// speculators-datagen's parts: derived verifier shapes and their errors, autoregressive sampling
// (greedy samples must be the verifier's own argmax continuations), the data.jsonl format, and
// the structure of a made verifier (peaked, and driven mostly by the last token).
#include <catch2/catch.hpp>

#include <sstream>

#include "../../core/io_test_util.h"
#include "eval/sampling.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "tools/make_verifier.h"

using namespace speculators;

namespace {

using test::error_message;

MakeVerifierOptions tiny_options(const std::string& arch = "llama") {
  MakeVerifierOptions o;
  o.arch = arch;
  o.hidden_size = 32;
  o.num_layers = 2;
  o.vocab_size = 64;
  o.seed = 1;
  return o;
}

}  // namespace

TEST_CASE("make-verifier derives valid head counts and names bad options", "[datagen]") {
  MakeVerifierOptions o = tiny_options();
  o.hidden_size = 64;
  TransformerConfig c = make_verifier_config(o);
  CHECK(c.num_attention_heads == 2);
  CHECK(c.num_key_value_heads == 1);
  CHECK(c.head_dim == 32);
  CHECK(c.intermediate_size == 192);
  o.hidden_size = 96;
  c = make_verifier_config(o);
  CHECK(c.num_attention_heads == 3);
  CHECK(c.num_key_value_heads == 3);
  o.hidden_size = 32;
  c = make_verifier_config(o);
  CHECK(c.num_attention_heads == 1);
  CHECK(c.head_dim == 32);

  o.hidden_size = 64;
  o.num_heads = 3;
  CHECK(error_message([&] { make_verifier_config(o); }).find("--num-heads") != std::string::npos);
  o.num_heads = 4;
  o.num_kv_heads = 3;
  CHECK(error_message([&] { make_verifier_config(o); }).find("--num-kv-heads") != std::string::npos);
  o = tiny_options("gpt2");
  CHECK(error_message([&] { make_verifier_config(o); }).find("gpt2") != std::string::npos);
  o = tiny_options();
  o.num_layers = 0;
  CHECK(error_message([&] { make_verifier_config(o); }).find("--num-layers") != std::string::npos);
}

TEST_CASE("greedy samples are the verifier's argmax continuations", "[datagen]") {
  torch::manual_seed(3);
  VerifierModel m(make_verifier_config(tiny_options()));
  nn::init_weights(*m, 0.5);
  SampleOptions o;
  o.num_samples = 5;
  o.seq_len = 12;
  o.prompt_len = 3;
  o.temperature = 0;
  o.batch_size = 2;  // several batches
  const SampledSequences s = sample_sequences(*m, o);
  REQUIRE(s.input_ids.sizes() == torch::IntArrayRef({5, 12}));
  torch::NoGradGuard g;
  const torch::Tensor logits = m->forward(s.input_ids, torch::Tensor(), torch::Tensor(), {}).logits;
  CHECK(torch::equal(logits.slice(1, 2, 11).argmax(-1), s.input_ids.slice(1, 3, 12)));
  const torch::Tensor expected_mask = torch::cat({torch::zeros({5, 3}, torch::kLong), torch::ones({5, 9}, torch::kLong)}, 1);
  CHECK(torch::equal(s.loss_mask, expected_mask));
  const double top1 = std::get<0>(torch::softmax(logits.slice(1, 2, 11), -1).max(-1)).mean().item<double>();
  CHECK(s.mean_top1 == Approx(top1).epsilon(1e-4));
}

TEST_CASE("sampling is seeded, in range, and round-trips through data.jsonl", "[datagen]") {
  torch::manual_seed(4);
  VerifierModel m(make_verifier_config(tiny_options("qwen3")));
  SampleOptions o;
  o.num_samples = 3;
  o.seq_len = 10;
  o.seed = 9;
  const SampledSequences a = sample_sequences(*m, o);
  const SampledSequences b = sample_sequences(*m, o);
  CHECK(torch::equal(a.input_ids, b.input_ids));
  o.seed = 10;
  CHECK_FALSE(torch::equal(a.input_ids, sample_sequences(*m, o).input_ids));
  CHECK(a.input_ids.min().item<std::int64_t>() >= 0);
  CHECK(a.input_ids.max().item<std::int64_t>() < 64);
  CHECK(a.loss_mask.sum().item<std::int64_t>() == 3 * (10 - 10 / 4));  // default prompt: seq_len / 4

  std::istringstream lines(to_jsonl(a));
  std::string line;
  std::int64_t row = 0;
  while (std::getline(lines, line)) {
    const Json j = Json::parse(line);
    CHECK(j.size() == 2);
    const torch::Tensor ids = torch::tensor(j.at("input_ids").as_int_list());
    const torch::Tensor mask = torch::tensor(j.at("loss_mask").as_int_list());
    CHECK(torch::equal(ids, a.input_ids[row]));
    CHECK(torch::equal(mask, a.loss_mask[row]));
    ++row;
  }
  CHECK(row == 3);

  o.prompt_len = 10;
  CHECK(error_message([&] { sample_sequences(*m, o); }).find("--prompt-len") != std::string::npos);
  o.prompt_len = 2;
  o.seq_len = 1;
  CHECK(error_message([&] { sample_sequences(*m, o); }).find("--seq-len") != std::string::npos);
  o.seq_len = 10;
  o.temperature = -1;
  CHECK(error_message([&] { sample_sequences(*m, o); }).find("--temperature") != std::string::npos);
  o.temperature = 1;
  o.num_samples = 0;
  CHECK(error_message([&] { sample_sequences(*m, o); }).find("--num-samples") != std::string::npos);
}

TEST_CASE("a made verifier is peaked and driven mostly by the last token", "[datagen]") {
  MadeVerifier made = make_structured_verifier(tiny_options());
  CHECK(made.mean_top1 > 0.5);
  CHECK(made.mean_top1 < 0.9);

  // The argmax after a full context mostly equals the argmax after the last token alone.
  SampleOptions o;
  o.num_samples = 8;
  o.seq_len = 24;
  o.seed = 5;
  const SampledSequences s = sample_sequences(*made.model, o);
  torch::NoGradGuard g;
  const torch::Tensor full = made.model->forward(s.input_ids, torch::Tensor(), torch::Tensor(), {}).logits.argmax(-1);
  const torch::Tensor alone =
      made.model->forward(s.input_ids.reshape({-1, 1}), torch::Tensor(), torch::Tensor(), {}).logits.argmax(-1).view({8, 24});
  const double agree = full.eq(alone).to(torch::kDouble).mean().item<double>();
  CHECK(agree > 0.8);
}

TEST_CASE("sample --seq-len beyond the verifier's max_position_embeddings is a usage error", "[datagen]") {
  torch::manual_seed(4);
  VerifierModel m(make_verifier_config(tiny_options()));
  const std::int64_t limit = m->config().max_position_embeddings;
  SampleOptions o;
  o.num_samples = 1;
  o.seq_len = 100000000;
  o.prompt_len = 4;
  try {
    sample_sequences(*m, o);
    FAIL("a 100,000,000-token sequence was started");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()) == cat("--seq-len 100000000 is beyond the verifier's context: max_position_embeddings is ",
                                       limit, " (config.json); use at most that"));
  }
  o.seq_len = limit;  // the limit itself is fine
  o.num_samples = 1;
  o.prompt_len = limit - 2;
  CHECK(sample_sequences(*m, o).input_ids.size(1) == limit);
}
