// EAGLE-3 configuration: options and their checks (speculators/models/eagle3/config.py), the
// synthesised decoder config (speculators/train/cli.py: create_transformer_layer_config), target
// layer ids (speculators/models/utils.py: resolve_target_layer_ids), and — without allocating
// anything 8B-sized — the config.json and the tensor table of a default eagle3 checkpoint for a
// Llama-3.1-8B verifier (llama31.h).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <set>

#include "config.h"
#include "llama31.h"
#include "eagle3_algorithm.h"
#include "speculators/build_config.h"
#include "speculators/error.h"
#include "speculators/vocab.h"

using namespace speculators;
using namespace speculators::eagle3;
using namespace speculators::eagle3::testing;

namespace {

BuildContext llama31_context(Json args) {
  BuildContext ctx;
  ctx.verifier_json = Json::parse(kLlama31Config, "Llama-3.1-8B config.json");
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, "Llama-3.1-8B config.json");
  ctx.verifier_name = "meta-llama/Llama-3.1-8B-Instruct";
  ctx.args = Args(std::move(args));
  if (ctx.args.has("draft_vocab_size")) {
    ctx.vocab = build_vocab_mapping({}, ctx.verifier.vocab_size, *Eagle3Options::from_args(ctx.args).draft_vocab_size);
  }
  return ctx;
}

std::vector<std::string> saved_names(const Eagle3Config& config) {
  std::vector<std::string> names;
  for (const auto& s : state_spec(config)) {
    if (s.saved) names.push_back(s.name);
  }
  return names;
}

void require_same_json(const Json& actual, const Json& expected, const std::string& path) {
  REQUIRE(actual.is_object());
  std::set<std::string> actual_keys, expected_keys;
  for (const auto& kv : actual.as_object()) actual_keys.insert(kv.first);
  for (const auto& kv : expected.as_object()) expected_keys.insert(kv.first);
  INFO(path);
  REQUIRE(actual_keys == expected_keys);
  for (const auto& [key, value] : expected.as_object()) {
    INFO(path << "." << key << ": got " << actual.at(key).dump() << ", expected " << value.dump());
    if (value.is_object() && key != "auto_map") {
      require_same_json(actual.at(key), value, path + "." + key);
    } else {
      REQUIRE(actual.at(key) == value);
    }
  }
}

}  // namespace

TEST_CASE("Llama-3.1-8B default run: config.json key by key", "[eagle3][config]") {
  const auto config = config_from_build_context(llama31_context(Json::object({{"draft_vocab_size", 32000}})));
  Json expected = Json::parse(kExpectedConfig, "kExpectedConfig");
  expected["speculators_version"] = SPECULATORS_VERSION;
  const Json actual = config.to_json();
  require_same_json(actual, expected, "config.json");
  REQUIRE_FALSE(actual.contains("transformers_version"));  // not invented (docs/compatibility.md)
}

TEST_CASE("Llama-3.1-8B default run: tensor names, shapes, dtypes", "[eagle3][config]") {
  const auto config = config_from_build_context(llama31_context(Json::object({{"draft_vocab_size", 32000}})));
  std::vector<std::tuple<std::string, std::vector<std::int64_t>, torch::ScalarType>> saved;
  std::int64_t trainable = 0;
  for (const auto& s : state_spec(config)) {
    if (s.saved) saved.emplace_back(s.name, s.shape, s.dtype);
    std::int64_t n = 1;
    for (auto d : s.shape) n *= d;
    if (s.trainable) trainable += n;
    if (s.name.rfind("verifier_", 0) == 0) REQUIRE_FALSE(s.saved);
  }
  REQUIRE(saved.size() == kLlama31Tensors.size());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    const auto& [name, shape, dtype] = saved[i];
    const auto& [want_name, want_shape, want_dtype] = kLlama31Tensors[i];
    INFO(want_name);
    REQUIRE(name == want_name);
    REQUIRE(shape == want_shape);
    REQUIRE(dtype == want_dtype);
  }
  // About 294 M trainable parameters (fc 50.3 M, attention 67.1 M, MLP 176.2 M).
  REQUIRE(trainable > 293'000'000);
  REQUIRE(trainable < 295'000'000);
}

TEST_CASE("tensor table variants", "[eagle3][config]") {
  SECTION("fc_norm replaces input_norm") {
    const auto c = config_from_build_context(llama31_context(
        Json::object({{"draft_vocab_size", 32000}, {"fc_norm", true}, {"norm_before_fc", false}})));
    const auto names = saved_names(c);
    for (const char* n : {"fc_norm.0.weight", "fc_norm.1.weight", "fc_norm.2.weight"}) {
      REQUIRE(std::count(names.begin(), names.end(), n) == 1);
    }
    REQUIRE(std::count(names.begin(), names.end(), "input_norm.weight") == 0);
  }
  SECTION("qwen3 adds per-head q_norm / k_norm; more layers are standard") {
    const auto c = config_from_build_context(llama31_context(
        Json::object({{"draft_vocab_size", 32000}, {"draft_arch", "qwen3"}, {"num_layers", 2}})));
    std::map<std::string, std::vector<std::int64_t>> shapes;
    for (const auto& s : state_spec(c)) shapes[s.name] = s.shape;
    REQUIRE(shapes.at("layers.0.self_attn.q_norm.weight") == std::vector<std::int64_t>{128});
    REQUIRE(shapes.at("layers.1.self_attn.k_norm.weight") == std::vector<std::int64_t>{128});
    REQUIRE(shapes.at("layers.1.self_attn.q_proj.weight") == std::vector<std::int64_t>{4096, 4096});
    REQUIRE(shapes.count("layers.1.hidden_norm.weight") == 0);
    REQUIRE(c.to_json().at("transformer_layer_config").at("model_type") == Json("qwen3"));
  }
  SECTION("full vocabulary: no d2t / t2d and a V-row lm_head") {
    const auto c = config_from_build_context(llama31_context(Json::object()));
    std::map<std::string, std::vector<std::int64_t>> shapes;
    for (const auto& s : state_spec(c)) shapes[s.name] = s.shape;
    REQUIRE(shapes.count("d2t") == 0);
    REQUIRE(shapes.count("t2d") == 0);
    REQUIRE(shapes.at("lm_head.weight") == std::vector<std::int64_t>{128256, 4096});
    REQUIRE(c.to_json().at("draft_vocab_size") == Json(128256));
  }
}

TEST_CASE("config.json round trip", "[eagle3][config]") {
  const auto config = config_from_build_context(llama31_context(
      Json::object({{"draft_vocab_size", 32000}, {"ttt_steps", 5}, {"full_attention_indices", Json(std::vector<std::int64_t>{0})}})));
  const Json json = config.to_json();
  REQUIRE(json.at("speculators_config").at("proposal_methods").as_array()[0].at("speculative_tokens") == Json(5));
  REQUIRE(json.at("transformer_layer_config").at("layer_types") == Json(std::vector<std::string>{"full_attention"}));
  const auto back = Eagle3Config::from_json(json);
  REQUIRE(back.to_json() == json);

  REQUIRE_THROWS_WITH(Eagle3Config::from_json(Json::object({{"speculators_model_type", "dflash"}}), "x/config.json"),
                      Catch::Contains("x/config.json") && Catch::Contains("'dflash'"));
  Json no_layer = json;
  no_layer.as_object().erase("transformer_layer_config");
  REQUIRE_THROWS_WITH(Eagle3Config::from_json(no_layer), Catch::Contains("transformer_layer_config"));
  Json both = json;
  both["fc_norm"] = true;
  REQUIRE_THROWS_WITH(Eagle3Config::from_json(both).validate("y"), Catch::Contains("mutually exclusive"));
  Json mismatch = json;
  mismatch["target_hidden_size"] = 1024;
  REQUIRE_THROWS_WITH(Eagle3Config::from_json(mismatch), Catch::Contains("target_hidden_size"));
}

TEST_CASE("missing flags in a saved config take the class defaults", "[eagle3][config]") {
  const auto config = config_from_build_context(llama31_context(Json::object({{"draft_vocab_size", 32000}})));
  Json json = config.to_json();
  json.as_object().erase("norm_before_residual");
  json.as_object().erase("norm_output");
  const auto back = Eagle3Config::from_json(json);
  REQUIRE_FALSE(back.norm_before_residual);  // Eagle3SpeculatorConfig class default
  REQUIRE_FALSE(back.norm_output);
  REQUIRE(back.norm_before_fc);
}

TEST_CASE("draft vocab size needs a mapping", "[eagle3][config]") {
  auto ctx = llama31_context(Json::object({{"draft_vocab_size", 32000}}));
  ctx.vocab = VocabMapping{};
  REQUIRE_THROWS_WITH(config_from_build_context(ctx), Catch::Contains("draft_vocab_size=32000") &&
                                                          Catch::Contains("--d2t-path"));
  auto ctx2 = llama31_context(Json::object({{"draft_vocab_size", 32000}, {"d2t_path", "data/d2t.npy"}}));
  ctx2.vocab = build_vocab_mapping({}, 128256, 31000);
  REQUIRE_THROWS_WITH(config_from_build_context(ctx2), Catch::Contains("t2d.npy"));
}

TEST_CASE("default target layer ids are [2, n/2, n-3]", "[eagle3][config]") {
  auto ids_of = [](Json job) { return Eagle3Options::from_args(Args(std::move(job))).target_layer_ids; };
  REQUIRE(resolve_target_layer_ids(ids_of(Json::object()), 32) == std::vector<std::int64_t>{2, 16, 29});
  REQUIRE(resolve_target_layer_ids(ids_of(Json::object()), 36) == std::vector<std::int64_t>{2, 18, 33});
  const Json given = Json::object({{"target_layer_ids", Json(std::vector<std::int64_t>{1, 3})}});
  REQUIRE(resolve_target_layer_ids(ids_of(given), 32) == std::vector<std::int64_t>{1, 3});
  REQUIRE_THROWS_WITH(resolve_target_layer_ids(ids_of(Json::object()), 2), Catch::Contains("--target-layer-ids"));
  const Json bad = Json::object({{"target_layer_ids", Json(std::vector<std::int64_t>{40})}});
  REQUIRE_THROWS_WITH(resolve_target_layer_ids(ids_of(bad), 32), Catch::Contains("layer 40"));
}

TEST_CASE("synthesised draft decoder (create_transformer_layer_config)", "[eagle3][config]") {
  TransformerConfig v;
  v.model_type = "llama";
  v.vocab_size = 100;
  v.hidden_size = 96;
  v.num_attention_heads = 5;  // 96 % 5 != 0 ...
  v.num_key_value_heads = 2;
  v.head_dim = 32;            // ... but the explicit head_dim divides 96
  v.intermediate_size = 200;
  v.hidden_act = "gelu";
  v.rope_theta = 0;
  RopeScaling rs;
  rs.rope_type = "llama3";
  rs.factor = 8.0;
  rs.raw = Json::object({{"type", "llama3"}, {"factor", 8.0}, {"mrope_interleaved", true}, {"partial_rotary_factor", 0.5}});
  v.rope_scaling = rs;
  const Json described = Json::object({{"head_dim", 32}, {"intermediate_size", 200}});

  DraftShape shape;
  shape.num_layers = 3;
  shape.full_attention_indices = {1};
  const auto d = synthesize_draft_config(v, described, shape);
  REQUIRE(d.num_attention_heads == 3);   // 96 / 32
  REQUIRE(d.num_key_value_heads == 3);   // 3 % 2 != 0 -> nkv = nh
  REQUIRE(d.hidden_act == "silu");
  REQUIRE(d.intermediate_size == 200);
  REQUIRE(d.layer_types == std::vector<std::string>{"sliding_attention", "full_attention", "sliding_attention"});
  REQUIRE(d.sliding_window == std::optional<std::int64_t>(2048));
  REQUIRE(d.rope_theta == 10000.0);
  REQUIRE_FALSE(d.tie_word_embeddings);
  REQUIRE(d.rope_scaling->raw == Json::object({{"factor", 8.0}, {"rope_type", "llama3"}}));

  shape.hidden_act = std::nullopt;
  shape.sliding_window = std::nullopt;
  const auto e = synthesize_draft_config(v, Json::object({{"head_dim", 32}}), shape);  // MoE: no intermediate_size
  REQUIRE(e.hidden_act == "gelu");
  REQUIRE(e.intermediate_size == 3 * 96);
  REQUIRE(e.layer_types == std::vector<std::string>{"full_attention", "full_attention", "full_attention"});

  shape.arch = "mistral";
  REQUIRE_THROWS_WITH(synthesize_draft_config(v, described, shape), Catch::Contains("'mistral'"));
}

TEST_CASE("job option checks (Eagle3SpeculatorConfig validator)", "[eagle3][config]") {
  auto args = [](Json j) { return Args(std::move(j)); };
  REQUIRE_NOTHROW(validate_args(args(Json::object())));
  REQUIRE_NOTHROW(validate_args(args(Json::object({{"fc_norm", true}, {"norm_before_fc", false}}))));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"fc_norm", true}}))),
                      Catch::Contains("norm_before_fc") && Catch::Contains("fc_norm"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"ttt_steps", 0}}))), Catch::Contains("ttt_steps"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"loss_fn", "kld"}}))), Catch::Contains("--loss-fn"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"full_attention_indices", Json(std::vector<std::int64_t>{1})}}))),
                      Catch::Contains("full_attention_indices"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"sliding_window", 0}}))), Catch::Contains("sliding_window"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"draft_hidden_act", "swish"}}))), Catch::Contains("'swish'"));
  REQUIRE_THROWS_WITH(validate_args(args(Json::object({{"ttt_step_loss_decay", -1.0}}))),
                      Catch::Contains("ttt_step_loss_decay"));
}

TEST_CASE("schema: eagle3's options, groups and training defaults", "[eagle3][config]") {
  std::map<std::string, Option> by_key;
  for (const auto& o : Eagle3Algorithm().schema()) by_key[o.key] = o;
  const std::map<std::string, Json> defaults = {
      {"ttt_steps", Json(3)},           {"ttt_step_loss_decay", Json(1.0)}, {"norm_before_residual", Json(true)},
      {"norm_before_fc", Json(true)},   {"fc_norm", Json(false)},           {"norm_output", Json(true)},
      {"embed_requires_grad", Json(false)}, {"sliding_window", Json(2048)}, {"full_attention_indices", Json::array()},
      {"draft_arch", Json("llama")},    {"draft_hidden_act", Json("silu")}, {"loss_fn", Json("kl_div")},
      {"num_layers", Json(1)}};
  REQUIRE(by_key.size() == defaults.size());
  for (const auto& [key, value] : defaults) {
    INFO(key);
    REQUIRE(by_key.count(key) == 1);
    REQUIRE(by_key.at(key).default_value == value);
  }
  REQUIRE(by_key.at("loss_fn").group == "loss");
  REQUIRE(by_key.at("ttt_steps").group == "loss");
  REQUIRE(by_key.at("norm_before_fc").group == "draft");
  REQUIRE(by_key.at("draft_arch").choices == std::vector<std::string>{"llama", "qwen3"});
}

TEST_CASE("trainer call arguments are the same for training and validation", "[eagle3][config]") {
  const auto [train, val] = Eagle3Algorithm().trainer_kwargs(
      Args(Json::object({{"ttt_steps", 5}, {"ttt_step_loss_decay", 0.8}, {"loss_fn", "tv"}})));
  REQUIRE(train == val);
  REQUIRE(train.at("ttt_steps") == Json(5));
  REQUIRE(train.at("ttt_step_loss_decay") == Json(0.8));
  REQUIRE(train.at("loss_fn") == Json("tv"));
}

TEST_CASE("a verifier with only rope_parameters gives the draft its theta and scaling", "[eagle3][config]") {
  // transformers 5 writes the rotary parameters under rope_parameters; the draft copies them.
  const Json j = Json::parse(R"({"model_type": "qwen3_moe", "vocab_size": 64, "hidden_size": 32,
      "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 4,
      "num_experts_per_tok": 2, "moe_intermediate_size": 16, "max_position_embeddings": 4096,
      "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                          "original_max_position_embeddings": 1024}})");
  const TransformerConfig v = TransformerConfig::from_hf_json(j, "moe/config.json");
  DraftShape shape;
  const auto d = synthesize_draft_config(v, j, shape);
  REQUIRE(d.rope_theta == 1e6);
  REQUIRE(d.rope_scaling);
  REQUIRE(d.rope_scaling->rope_type == "yarn");
  REQUIRE(d.rope_scaling->original_max_position_embeddings == 1024);
  REQUIRE(d.intermediate_size == 3 * 32);  // no dense intermediate_size in the file
  const Json layer = d.to_layer_config_json();
  REQUIRE(layer.at("rope_theta") == Json(1e6));
  REQUIRE(layer.at("rope_scaling") ==
          Json::object({{"factor", 4.0}, {"original_max_position_embeddings", 1024}, {"rope_type", "yarn"}}));
}
