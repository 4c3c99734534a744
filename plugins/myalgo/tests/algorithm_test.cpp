// The myalgo algorithm as the host drives it: schema, validation, aux-layer defaults, building
// from a job and a verifier directory, trainer kwargs, and the config.json round trip.
#include <catch2/catch.hpp>

#include <set>

#include "myalgo.h"
#include "speculators/error.h"
#include "test_util.h"

using namespace speculators;
using namespace speculators::myalgo;

namespace {

const Option& option(const Schema& schema, const std::string& key) {
  for (const auto& o : schema)
    if (o.key == key) return o;
  FAIL("schema has no option " << key);
  throw Error("unreachable");
}

// A job as the host resolves it for myalgo: its own defaults plus the host keys it reads.
Args job(Json overrides = Json::object()) {
  Json values = Json::object({{"block_size", 2},
                              {"num_layers", 1},
                              {"draft_arch", "llama"},
                              {"head_loss_decay", 0.8},
                              {"target_layer_ids", nullptr},
                              {"draft_vocab_size", nullptr}});
  for (const auto& kv : overrides.as_object()) values[kv.first] = kv.second;
  return Args(values);
}

BuildContext context_for(const std::string& dir, const TransformerConfig& verifier, Args args) {
  BuildContext ctx;
  ctx.verifier = verifier;
  ctx.verifier_path = dir;
  ctx.verifier_name = "org/tiny-verifier";
  ctx.args = std::move(args);
  return ctx;
}

TransformerConfig four_layer_verifier() {
  TransformerConfig c = test::tiny_transformer();
  c.num_hidden_layers = 4;
  c.layer_types.assign(4, "full_attention");
  return c;
}

}  // namespace

TEST_CASE("the schema declares myalgo's options with their defaults", "[myalgo][algorithm]") {
  const Schema schema = MyAlgo().schema();
  const Option& block = option(schema, "block_size");
  CHECK(block.type == OptionType::kInt);
  CHECK(block.default_value == Json(8));
  CHECK(block.flag() == "--block-size");
  CHECK(option(schema, "num_layers").default_value == Json(1));
  const Option& decay = option(schema, "head_loss_decay");
  CHECK(decay.type == OptionType::kFloat);
  CHECK(decay.default_value.as_double() == Approx(0.8));
  CHECK(option(schema, "draft_arch").choices == std::vector<std::string>{"llama", "qwen3"});
  CHECK(MyAlgo().name() == "myalgo");
}

TEST_CASE("validate names the key at fault", "[myalgo][algorithm][errors]") {
  CHECK_NOTHROW(MyAlgo().validate(job()));
  CHECK_THROWS_WITH(MyAlgo().validate(job(Json::object({{"block_size", 0}}))), Catch::Contains("block_size"));
  CHECK_THROWS_WITH(MyAlgo().validate(job(Json::object({{"num_layers", 0}}))), Catch::Contains("num_layers"));
  CHECK_THROWS_WITH(MyAlgo().validate(job(Json::object({{"head_loss_decay", -1.0}}))),
                    Catch::Contains("head_loss_decay"));
  try {
    MyAlgo().validate(job(Json::object({{"block_size", -3}})));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
  }
}

TEST_CASE("default aux layers follow the reference and stay distinct on small verifiers", "[myalgo][algorithm]") {
  CHECK(default_aux_layer_ids(32) == std::vector<std::int64_t>{2, 16, 29});  // Llama-3.1-8B
  CHECK(default_aux_layer_ids(36) == std::vector<std::int64_t>{2, 18, 33});  // Qwen3-8B
  CHECK(default_aux_layer_ids(7) == std::vector<std::int64_t>{2, 3, 4});
  CHECK(default_aux_layer_ids(1) == std::vector<std::int64_t>{1});
  CHECK(default_aux_layer_ids(2) == std::vector<std::int64_t>{1});
  CHECK(default_aux_layer_ids(3) == std::vector<std::int64_t>{1, 2});
  CHECK(default_aux_layer_ids(4) == std::vector<std::int64_t>{1, 2, 3});
  for (std::int64_t n = 1; n <= 64; ++n) {
    INFO("n = " << n);
    auto ids = default_aux_layer_ids(n);
    CHECK(ids.size() == static_cast<std::size_t>(std::min<std::int64_t>(3, std::max<std::int64_t>(1, n - 1))));
    CHECK(std::set<std::int64_t>(ids.begin(), ids.end()).size() == ids.size());
    for (auto id : ids) CHECK((id >= 1 && id <= n));
  }
  CHECK_THROWS_AS(default_aux_layer_ids(0), Error);
}

TEST_CASE("target_layer_ids from the job are checked against the verifier", "[myalgo][algorithm][errors]") {
  const TransformerConfig verifier = four_layer_verifier();
  CHECK(MyAlgo().target_layer_ids(context_for("", verifier, job())) == std::vector<std::int64_t>{1, 2, 3});
  auto given = job(Json::object({{"target_layer_ids", std::vector<std::int64_t>{0, 3}}}));
  CHECK(MyAlgo().target_layer_ids(context_for("", verifier, given)) == std::vector<std::int64_t>{0, 3});
  auto outside = job(Json::object({{"target_layer_ids", std::vector<std::int64_t>{1, 5}}}));
  CHECK_THROWS_WITH(MyAlgo().target_layer_ids(context_for("", verifier, outside)),
                    Catch::Contains("target_layer_ids") && Catch::Contains("contains 5"));
  auto empty = job(Json::object({{"target_layer_ids", Json::array()}}));
  CHECK_THROWS_WITH(MyAlgo().target_layer_ids(context_for("", verifier, empty)), Catch::Contains("empty"));
}

TEST_CASE("the draft decoder config is synthesised from the verifier's", "[myalgo][algorithm]") {
  TransformerConfig verifier = four_layer_verifier();
  verifier.sliding_window = 64;
  verifier.attention_bias = true;
  const TransformerConfig draft = draft_layer_config(verifier, "qwen3", 2);
  CHECK(draft.model_type == "qwen3");
  CHECK(draft.num_hidden_layers == 2);
  CHECK(draft.layer_types == std::vector<std::string>{"full_attention", "full_attention"});
  CHECK(!draft.sliding_window.has_value());
  CHECK(!draft.attention_bias);
  CHECK(draft.hidden_size == verifier.hidden_size);
  CHECK(draft.vocab_size == verifier.vocab_size);
  CHECK(draft.num_key_value_heads == verifier.num_key_value_heads);
  CHECK(draft.head_dim == verifier.head_dim);
  CHECK_THROWS_WITH(draft_layer_config(verifier, "gpt2", 1), Catch::Contains("draft_arch \"gpt2\""));
}

TEST_CASE("from_training_args builds a draft from a verifier directory", "[myalgo][algorithm]") {
  test::TempDir dir("myalgo-build");
  const TransformerConfig verifier = four_layer_verifier();
  auto tensors = test::write_verifier_dir(dir.str(), verifier);
  auto args = job(Json::object({{"num_layers", 2}, {"block_size", 4}}));
  auto draft = MyAlgo().from_training_args(context_for(dir.str(), verifier, args));

  CHECK(draft->layers()->size() == 2);
  CHECK(draft->target_layer_ids() == std::vector<std::int64_t>{1, 2, 3});
  auto head = std::dynamic_pointer_cast<torch::nn::LinearImpl>(draft->lm_head());
  REQUIRE(head);
  CHECK(torch::equal(head->weight, tensors["lm_head.weight"]));
  const Json config = draft->config_json();
  CHECK(config.at("block_size").as_int() == 4);
  CHECK(config.at("speculators_config").at("verifier").at("name_or_path").as_string() == "org/tiny-verifier");

  ForwardResult result = draft->forward(test::tiny_batch(3 * 16, 16), MyAlgo().trainer_kwargs(args).first);
  CHECK(result.output.size() == 4);
  CHECK(std::isfinite(result.loss.item<double>()));
}

TEST_CASE("from_training_args rejects a draft vocabulary it cannot honour", "[myalgo][algorithm][errors]") {
  test::TempDir dir("myalgo-vocab-args");
  const TransformerConfig verifier = four_layer_verifier();
  test::write_verifier_dir(dir.str(), verifier);
  auto reduced = job(Json::object({{"draft_vocab_size", 8}}));
  CHECK_THROWS_WITH(MyAlgo().from_training_args(context_for(dir.str(), verifier, reduced)),
                    Catch::Contains("draft_vocab_size 8") && Catch::Contains("vocab mapping"));

  BuildContext mismatched = context_for(dir.str(), verifier, job(Json::object({{"draft_vocab_size", 6}})));
  mismatched.vocab.t2d = torch::zeros({32}, torch::kBool);
  mismatched.vocab.t2d.slice(0, 0, 8).fill_(true);
  mismatched.vocab.d2t = torch::zeros({8}, torch::kInt64);
  CHECK_THROWS_WITH(MyAlgo().from_training_args(mismatched), Catch::Contains("does not match the vocab mapping"));
}

TEST_CASE("trainer_kwargs carry the loss decay; preprocess keeps samples as they are", "[myalgo][algorithm]") {
  auto [train, val] = MyAlgo().trainer_kwargs(job(Json::object({{"head_loss_decay", 0.5}})));
  CHECK(train.at("head_loss_decay").as_double() == 0.5);
  CHECK(val == train);

  Sample sample;
  sample.tensors["input_ids"] = torch::arange(5, torch::kInt64);
  auto out = MyAlgo().preprocess(sample);
  REQUIRE(out.has_value());
  CHECK(torch::equal(out->tensors.at("input_ids"), sample.tensors.at("input_ids")));
}

TEST_CASE("config_json -> from_config gives back the same model", "[myalgo][algorithm][config]") {
  MyAlgoModel original(test::tiny_config(3));
  test::fill_frozen(original);
  const Json config = original.config_json();

  // The keys vLLM and the loader read.
  CHECK(config.at("speculators_model_type").as_string() == "myalgo");
  const Json& spec = config.at("speculators_config");
  CHECK(spec.at("algorithm").as_string() == "myalgo");
  CHECK(spec.at("default_proposal_method").as_string() == "greedy");
  REQUIRE(spec.at("proposal_methods").size() == 1);
  CHECK(spec.at("proposal_methods").as_array()[0].at("speculative_tokens").as_int() == 3);
  CHECK(spec.at("verifier").at("architectures").as_string_list() == std::vector<std::string>{"LlamaForCausalLM"});
  CHECK(config.at("aux_hidden_state_layer_ids").as_int_list() == std::vector<std::int64_t>{1, 2});
  CHECK(config.at("transformer_layer_config").at("num_hidden_layers").as_int() == 1);

  // Through the bytes the host writes, as --from-pretrained reads them.
  const Json reread = Json::parse(config.dump_python(), "config.json");
  BuildContext ctx;
  ctx.verifier = test::tiny_transformer();
  auto loaded = MyAlgo().from_config(reread, ctx);
  CHECK(loaded->config_json() == config);

  auto a = original.named_parameters();
  auto b = loaded->named_parameters();
  REQUIRE(a.size() == b.size());
  for (const auto& p : a) {
    REQUIRE(b.contains(p.key()));
    CHECK(b[p.key()].sizes() == p.value().sizes());
  }
  // Without a verifier directory the frozen head is filled only by the checkpoint's weights.
  CHECK_THROWS_WITH(loaded->after_load(ctx), Catch::Contains("lm_head.weight was never loaded"));
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : a) b[p.key()].copy_(p.value());
  }
  CHECK_NOTHROW(loaded->after_load(ctx));
}

TEST_CASE("a config.json that is not myalgo's is reported", "[myalgo][algorithm][config][errors]") {
  const Json good = MyAlgoModel(test::tiny_config(2)).config_json();
  BuildContext ctx;
  ctx.verifier = test::tiny_transformer();

  Json other = good;
  other["speculators_model_type"] = "eagle3";
  CHECK_THROWS_WITH(MyAlgo().from_config(other, ctx), Catch::Contains("speculators_model_type"));
  Json missing = good;
  missing.as_object().erase("block_size");
  CHECK_THROWS_WITH(MyAlgo().from_config(missing, ctx), Catch::Contains("config.json: missing \"block_size\""));
  Json zero = good;
  zero["block_size"] = 0;
  CHECK_THROWS_WITH(MyAlgo().from_config(zero, ctx), Catch::Contains("block_size must be >= 1"));

  BuildContext wider;
  wider.verifier = test::tiny_transformer(32, 24);
  CHECK_THROWS_WITH(MyAlgo().from_config(good, wider), Catch::Contains("hidden_size 16"));
}
