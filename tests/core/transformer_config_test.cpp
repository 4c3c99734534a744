// TransformerConfig: Hugging Face config.json parsing (Llama, Qwen2, Qwen3, Mistral, Qwen3-MoE,
// multimodal text_config, both rotary spellings),
// its errors, the verifier config.json written by make-verifier, and the draft's
// transformer_layer_config key set (speculators/train/cli.py:
// create_transformer_layer_config).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "io_test_util.h"
#include "speculators/error.h"
#include "speculators/nn/transformer_config.h"

using namespace speculators;

namespace {

// The config.json of meta-llama/Llama-3.1-8B-Instruct (the fields that matter here).
const char* const kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "vocab_size": 128256})";

const char* const kQwen3 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "head_dim": 128,
  "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 12288,
  "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
  "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": false, "use_sliding_window": false, "vocab_size": 151936})";

using test::error_message;

std::set<std::string> keys_of(const Json& j) {
  std::set<std::string> out;
  for (const auto& kv : j.as_object()) out.insert(kv.first);
  return out;
}

}  // namespace

TEST_CASE("Llama-3.1 config.json parses with llama3 rope scaling", "[verifier][config]") {
  const TransformerConfig c = TransformerConfig::from_hf_json(Json::parse(kLlama31), "llama/config.json");
  CHECK(c.model_type == "llama");
  CHECK(c.head_dim == 128);  // hidden / heads
  CHECK(c.num_key_value_heads == 8);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.rope_theta == 500000.0);
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "llama3");
  CHECK(c.rope_scaling->factor == 8.0);
  CHECK(c.rope_scaling->original_max_position_embeddings == 8192);
  CHECK(c.eos_token_id == 128001);
  CHECK(c.layer_types == std::vector<std::string>(32, "full_attention"));
  CHECK(c.architectures == std::vector<std::string>{"LlamaForCausalLM"});
  CHECK_FALSE(c.window_of_layer(3));
}

TEST_CASE("transformer_layer_config has exactly the reference's keys", "[verifier][config]") {
  TransformerConfig c = TransformerConfig::from_hf_json(Json::parse(kLlama31));
  // create_transformer_layer_config: the draft gets one sliding layer with window 2048.
  c.num_hidden_layers = 1;
  c.layer_types = {"sliding_attention"};
  c.sliding_window = 2048;
  const Json j = c.to_layer_config_json();
  const std::set<std::string> expected = {
      "attention_bias", "attention_dropout", "head_dim", "hidden_act", "hidden_size", "initializer_range",
      "intermediate_size", "layer_types", "max_position_embeddings", "mlp_bias", "model_type",
      "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "pretraining_tp", "rms_norm_eps",
      "rope_scaling", "rope_theta", "sliding_window", "use_cache", "use_sliding_window", "vocab_size"};
  CHECK(keys_of(j) == expected);
  CHECK(j.at("rope_theta").is_float());
  CHECK(j.at("rope_theta").as_double() == 500000.0);
  CHECK(j.at("pretraining_tp") == Json(1));
  CHECK(j.at("use_cache") == Json(true));
  CHECK(j.at("use_sliding_window") == Json(true));
  CHECK(j.at("sliding_window") == Json(2048));
  CHECK(j.at("rope_scaling") == Json::parse(R"({"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
      "original_max_position_embeddings": 8192, "rope_type": "llama3"})"));
  CHECK(c.window_of_layer(0) == 2048);

  // Qwen3Config's diff dict: no mlp_bias / pretraining_tp, plus max_window_layers.
  TransformerConfig q = TransformerConfig::from_hf_json(Json::parse(kQwen3));
  std::set<std::string> qwen3_keys = expected;
  qwen3_keys.erase("mlp_bias");
  qwen3_keys.erase("pretraining_tp");
  qwen3_keys.insert("max_window_layers");
  CHECK(keys_of(q.to_layer_config_json()) == qwen3_keys);
  CHECK(q.to_layer_config_json().at("rope_scaling").is_null());
  CHECK(q.to_layer_config_json().at("rope_theta").is_float());
}

TEST_CASE("qwen3 config: sliding window only with use_sliding_window", "[verifier][config]") {
  Json j = Json::parse(kQwen3);
  j["sliding_window"] = 4096;
  TransformerConfig c = TransformerConfig::from_hf_json(j);
  CHECK_FALSE(c.sliding_window);
  CHECK(c.head_dim == 128);
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 30;
  c = TransformerConfig::from_hf_json(j);
  CHECK(c.sliding_window == 4096);
  CHECK(c.layer_types[29] == "full_attention");
  CHECK(c.layer_types[30] == "sliding_attention");
  CHECK(c.window_of_layer(35) == 4096);
  CHECK_FALSE(c.window_of_layer(0));
  CHECK_THROWS_AS(c.window_of_layer(36), Error);
}

TEST_CASE("config defaults, legacy 'type' alias and multimodal text_config", "[verifier][config]") {
  Json j = Json::parse(R"({"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4,
      "rope_scaling": {"type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
                       "original_max_position_embeddings": 64}})");
  TransformerConfig c = TransformerConfig::from_hf_json(j);
  CHECK(c.head_dim == 8);
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.hidden_act == "silu");
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "llama3");
  CHECK(c.rope_scaling->raw.contains("rope_type"));
  CHECK_FALSE(c.rope_scaling->raw.contains("type"));

  Json mm = Json::object();
  mm["architectures"] = Json(std::vector<std::string>{"SomeVLForConditionalGeneration"});
  mm["model_type"] = "some_vl";
  mm["text_config"] = Json::parse(kQwen3);
  mm["text_config"].as_object().erase("architectures");
  c = TransformerConfig::from_hf_json(mm, "vl/config.json");
  CHECK(c.model_type == "qwen3");
  CHECK(c.vocab_size == 151936);
  CHECK(c.architectures == std::vector<std::string>{"SomeVLForConditionalGeneration"});
}

TEST_CASE("to_hf_json round-trips through from_hf_json", "[verifier][config]") {
  for (const char* text : {kLlama31, kQwen3}) {
    const TransformerConfig a = TransformerConfig::from_hf_json(Json::parse(text));
    const Json written = a.to_hf_json();
    CHECK(written.at("torch_dtype") == Json("float32"));
    CHECK(written.at("architectures").as_string_list() ==
          std::vector<std::string>{a.model_type == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM"});
    const TransformerConfig b = TransformerConfig::from_hf_json(written);
    CHECK(b.to_layer_config_json() == a.to_layer_config_json());
    CHECK(b.to_hf_json() == written);
    CHECK(b.tie_word_embeddings == a.tie_word_embeddings);
    CHECK(b.bos_token_id == a.bos_token_id);
  }
}

TEST_CASE("transformers 5 rope_parameters give the same rope as rope_scaling + rope_theta", "[verifier][config]") {
  const TransformerConfig old_style = TransformerConfig::from_hf_json(Json::parse(kLlama31));
  Json j = Json::parse(kLlama31);
  Json params = j.at("rope_scaling");
  params["rope_theta"] = j.at("rope_theta");
  j.as_object().erase("rope_scaling");
  j.as_object().erase("rope_theta");
  j["rope_parameters"] = params;
  const TransformerConfig c = TransformerConfig::from_hf_json(j);
  CHECK(c.rope_theta == old_style.rope_theta);
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "llama3");
  CHECK(c.rope_scaling->factor == 8.0);
  CHECK(c.to_layer_config_json() == old_style.to_layer_config_json());

  j["rope_parameters"] = Json::parse(R"({"rope_type": "default", "rope_theta": 500000.0})");
  const TransformerConfig plain = TransformerConfig::from_hf_json(j);
  CHECK_FALSE(plain.rope_scaling);
  CHECK(plain.rope_theta == 500000.0);

  j["rope_parameters"] = Json::parse(R"({"sliding_attention": {"rope_type": "default"}})");
  CHECK_THROWS_WITH(TransformerConfig::from_hf_json(j, "v/config.json"),
                    Catch::Contains("v/config.json") && Catch::Contains("per-layer-type rotary parameters"));
}

TEST_CASE("config errors name the file, the key and the valid values", "[verifier][config]") {
  Json j = Json::parse(kLlama31);
  j["model_type"] = "gemma2";
  std::string msg = error_message([&] { TransformerConfig::from_hf_json(j, "/models/m/config.json"); });
  CHECK(msg.find("/models/m/config.json") != std::string::npos);
  CHECK(msg.find("gemma2") != std::string::npos);
  CHECK(msg.find("llama, mistral, qwen2, qwen3, qwen3_moe") != std::string::npos);

  j = Json::parse(kLlama31);
  j.as_object().erase("hidden_size");
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "a/config.json"); });
  CHECK(msg.find("a/config.json") != std::string::npos);
  CHECK(msg.find("hidden_size") != std::string::npos);

  j = Json::parse(kLlama31);
  j["num_key_value_heads"] = "eight";
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "b/config.json"); });
  CHECK(msg.find("num_key_value_heads") != std::string::npos);
  CHECK(msg.find("b/config.json") != std::string::npos);

  j = Json::parse(kLlama31);
  j["num_key_value_heads"] = 5;
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "c/config.json"); });
  CHECK(msg.find("num_key_value_heads") != std::string::npos);

  j = Json::parse(kLlama31);
  j["rope_scaling"] = Json::parse(R"({"rope_type": "su", "factor": 4.0})");
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "d/config.json"); });
  CHECK(msg.find("'su'") != std::string::npos);
  CHECK(msg.find("default, dynamic, linear, llama3, longrope, yarn") != std::string::npos);

  j = Json::parse(kLlama31);
  j["rope_scaling"].as_object().erase("low_freq_factor");
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "e/config.json"); });
  CHECK(msg.find("low_freq_factor") != std::string::npos);

  j = Json::parse(kLlama31);
  j["hidden_act"] = "swish";
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "f/config.json"); });
  CHECK(msg.find("swish") != std::string::npos);

  j = Json::parse(kLlama31);
  j["layer_types"] = Json(std::vector<std::string>{"full_attention"});
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "g/config.json"); });
  CHECK(msg.find("layer_types") != std::string::npos);

  msg = error_message([&] { TransformerConfig::from_hf_json(Json::parse("[1, 2]"), "h/config.json"); });
  CHECK(msg.find("h/config.json") != std::string::npos);
}

TEST_CASE("rope_parameters (transformers 5) and rope_theta/rope_scaling are both read", "[verifier][config]") {
  Json j = Json::parse(kQwen3);
  j.as_object().erase("rope_theta");
  j.as_object().erase("rope_scaling");
  j["rope_parameters"] = Json::parse(R"({"rope_type": "default", "rope_theta": 1000000.0})");
  TransformerConfig c = TransformerConfig::from_hf_json(j);
  CHECK(c.rope_theta == 1e6);
  CHECK_FALSE(c.rope_scaling);

  // The dict's theta wins over a top-level one, as in convert_rope_params_to_dict.
  j["rope_theta"] = 5000.0;
  CHECK(TransformerConfig::from_hf_json(j).rope_theta == 1e6);

  j = Json::parse(kLlama31);
  const Json scaling = j.at("rope_scaling");
  j.as_object().erase("rope_scaling");
  j.as_object().erase("rope_theta");
  j["rope_parameters"] = scaling;
  j["rope_parameters"]["rope_theta"] = 500000.0;
  c = TransformerConfig::from_hf_json(j);
  CHECK(c.rope_theta == 500000.0);
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "llama3");
  CHECK(c.rope_scaling->factor == 8.0);
  CHECK_FALSE(c.rope_scaling->raw.contains("rope_theta"));  // written as the draft's rope_theta

  // yarn without original_max_position_embeddings: max_position_embeddings (standardize_rope_params).
  j = Json::parse(kQwen3);
  j["rope_scaling"] = Json::parse(R"({"rope_type": "yarn", "factor": 4.0})");
  c = TransformerConfig::from_hf_json(j);
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->original_max_position_embeddings == 40960);
  CHECK(c.rope_scaling->beta_fast == 32.0);
}

TEST_CASE("fields that change the math and are not implemented are errors", "[verifier][config]") {
  Json j = Json::parse(kLlama31);
  j["rope_scaling"]["beta_fast"] = 8.0;  // not a llama3 parameter
  std::string msg = error_message([&] { TransformerConfig::from_hf_json(j, "a/config.json"); });
  CHECK(msg.find("a/config.json") != std::string::npos);
  CHECK(msg.find("beta_fast") != std::string::npos);

  j = Json::parse(kQwen3);
  j["partial_rotary_factor"] = 0.5;
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "b/config.json"); });
  CHECK(msg.find("partial_rotary_factor") != std::string::npos);

  j = Json::parse(kQwen3);
  j["rope_parameters"] = Json::parse(R"({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0],
                                        "original_max_position_embeddings": 4096})");
  j.as_object().erase("rope_scaling");
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "c/config.json"); });
  CHECK(msg.find("short_factor") != std::string::npos);
  CHECK(msg.find("64") != std::string::npos);

  j = Json::parse(kQwen3);
  j["final_logit_softcapping"] = 30.0;
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "d/config.json"); });
  CHECK(msg.find("final_logit_softcapping") != std::string::npos);

  j = Json::parse(kQwen3);
  j["rope_parameters"] = Json::parse(R"({"full_attention": {"rope_type": "default"}})");
  j.as_object().erase("rope_scaling");
  msg = error_message([&] { TransformerConfig::from_hf_json(j, "e/config.json"); });
  CHECK(msg.find("full_attention") != std::string::npos);
}

TEST_CASE("family rules: Mistral and Qwen2 windows, Qwen3-MoE experts", "[verifier][config]") {
  Json j = Json::parse(kLlama31);
  j.as_object().erase("rope_scaling");
  j["model_type"] = "mistral";
  TransformerConfig c = TransformerConfig::from_hf_json(j);
  CHECK(c.sliding_window == 4096);  // MistralConfig's default for a missing key
  CHECK(c.window_of_layer(0) == 4096);
  CHECK(c.window_of_layer(31) == 4096);
  j["sliding_window"] = Json();
  CHECK_FALSE(TransformerConfig::from_hf_json(j).window_of_layer(0));

  j["model_type"] = "qwen2";
  j.as_object().erase("sliding_window");
  c = TransformerConfig::from_hf_json(j);
  CHECK_FALSE(c.sliding_window);  // use_sliding_window defaults to false
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 4;
  c = TransformerConfig::from_hf_json(j);
  CHECK_FALSE(c.window_of_layer(3));
  CHECK(c.window_of_layer(4) == 4096);

  j = Json::parse(kQwen3);
  j["model_type"] = "qwen3_moe";
  j["num_experts"] = 128;
  j["num_experts_per_tok"] = 8;
  j["moe_intermediate_size"] = 768;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = Json(std::vector<std::int64_t>{3});
  c = TransformerConfig::from_hf_json(j);
  CHECK(c.num_experts == 128);
  CHECK_FALSE(c.is_sparse_layer(0));
  CHECK(c.is_sparse_layer(1));
  CHECK_FALSE(c.is_sparse_layer(3));
  CHECK(c.is_sparse_layer(5));
  j["num_experts_per_tok"] = 200;
  CHECK(error_message([&] { TransformerConfig::from_hf_json(j); }).find("num_experts_per_tok") != std::string::npos);
}

TEST_CASE("any decoder family loads for its widths when features are pre-computed", "[verifier][config]") {
  // The text fields of google/gemma-2-2b's config.json (soft-capping, sandwich norms: not run here).
  const Json j = Json::parse(R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
      "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
      "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "rms_norm_eps": 1e-06,
      "sliding_window": 4096, "max_position_embeddings": 8192, "attn_logit_softcapping": 50.0,
      "final_logit_softcapping": 30.0, "query_pre_attn_scalar": 256, "rope_theta": 10000.0,
      "rope_scaling": {"factor": 4.0, "rope_type": "linear"}, "tie_word_embeddings": true})");
  std::string msg = error_message([&] { TransformerConfig::from_hf_json(j, "gemma/config.json"); });
  CHECK(msg.find("gemma2") != std::string::npos);
  const TransformerConfig c = TransformerConfig::from_hf_json(j, "gemma/config.json", /*widths_only_ok=*/true);
  CHECK(c.widths_only);
  CHECK(c.hidden_size == 2304);
  CHECK(c.head_dim == 256);
  CHECK(c.num_hidden_layers == 26);
  CHECK(c.layer_types == std::vector<std::string>(26, "full_attention"));
  REQUIRE(c.rope_scaling);
  CHECK(c.rope_scaling->rope_type == "linear");
  // The rotary parameters stay strict: a draft copies them.
  Json bad = j;
  bad["rope_scaling"]["mystery"] = 1.0;
  msg = error_message([&] { TransformerConfig::from_hf_json(bad, "gemma/config.json", true); });
  CHECK(msg.find("mystery") != std::string::npos);
  bad = j;
  bad.as_object().erase("hidden_size");
  msg = error_message([&] { TransformerConfig::from_hf_json(bad, "gemma/config.json", true); });
  CHECK(msg.find("hidden_size") != std::string::npos);
}

TEST_CASE("gpt_oss and llama4_text configs take their families' defaults", "[verifier][config]") {
  // openai/gpt-oss-20b's text fields without the keys GptOssConfig defaults: rope_parameters
  // (yarn, factor 32, no truncation), layer_types (even layers slide), attention_bias (true),
  // head_dim (64), sliding_window (128), rms_norm_eps (1e-5), theta 150000.
  const Json oss = Json::parse(R"({"model_type": "gpt_oss", "vocab_size": 201088, "hidden_size": 2880,
      "intermediate_size": 2880, "num_hidden_layers": 4, "num_attention_heads": 64, "num_key_value_heads": 8,
      "num_local_experts": 32, "num_experts_per_tok": 4})");
  const TransformerConfig g = TransformerConfig::from_hf_json(oss, "oss/config.json");
  CHECK(g.head_dim == 64);
  CHECK(g.attention_bias);
  CHECK(g.rms_norm_eps == 1e-5);
  CHECK(g.rope_theta == 150000.0);
  REQUIRE(g.rope_scaling);
  CHECK(g.rope_scaling->rope_type == "yarn");
  CHECK(g.rope_scaling->factor == 32.0);
  CHECK_FALSE(g.rope_scaling->truncate);
  CHECK(g.window_of_layer(0) == std::optional<std::int64_t>(128));
  CHECK_FALSE(g.window_of_layer(1));
  Json bad = oss;
  bad["num_experts_per_tok"] = 33;
  CHECK(error_message([&] { TransformerConfig::from_hf_json(bad, "oss/config.json"); }).find("num_experts_per_tok") !=
        std::string::npos);

  // Llama4TextConfig: head_dim 128, theta 500000, rms_norm_eps 1e-5; every 4th layer is NoPE with
  // full attention, the others chunked.
  const Json l4 = Json::parse(R"({"model_type": "llama4_text", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2})");
  const TransformerConfig l = TransformerConfig::from_hf_json(l4, "l4/config.json");
  CHECK(l.head_dim == 128);
  CHECK(l.rope_theta == 500000.0);
  CHECK(l.rms_norm_eps == 1e-5);
  CHECK(l.layer_types == std::vector<std::string>{"chunked_attention", "chunked_attention", "chunked_attention",
                                                   "full_attention"});
  bad = l4;
  bad["attention_chunk_size"] = Json();
  CHECK(error_message([&] { TransformerConfig::from_hf_json(bad, "l4/config.json"); }).find("attention_chunk_size") !=
        std::string::npos);
  bad = l4;
  bad["layer_types"] = Json(std::vector<std::string>(4, "sliding_attention"));
  CHECK(error_message([&] { TransformerConfig::from_hf_json(bad, "l4/config.json"); }).find("sliding_attention") !=
        std::string::npos);
  // Llama 4 Scout's config.json writes attn_temperature_tuning as the number 4 (a truth value).
  Json scout = l4;
  scout["attn_temperature_tuning"] = 4;
  CHECK_NOTHROW(TransformerConfig::from_hf_json(scout, "l4/config.json"));
  scout["attn_temperature_tuning"] = "yes";
  CHECK(error_message([&] { TransformerConfig::from_hf_json(scout, "l4/config.json"); })
            .find("attn_temperature_tuning") != std::string::npos);
  bad = l4;
  bad["moe_layers"] = Json(std::vector<std::int64_t>{7});
  CHECK(error_message([&] { TransformerConfig::from_hf_json(bad, "l4/config.json"); }).find("moe_layers") !=
        std::string::npos);
}

TEST_CASE("a config.json that is not JSON, or nests too deep, is a usage error naming the file", "[verifier][config]") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("speculators_config_test_" + std::to_string(::getpid()) + ".json")).string();
  std::ofstream(path) << "{\"a\":" << std::string(50000, '[') << std::string(50000, ']') << "}";
  try {
    TransformerConfig::from_file(path);
    FAIL("a 50,000-level config.json was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).rfind(path + ": invalid JSON: nested deeper than ", 0) == 0);
  }
  std::ofstream(path) << "{\"model_type\": \"llama\",";
  try {
    TransformerConfig::from_file(path);
    FAIL("a truncated config.json was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).rfind(path + ": invalid JSON", 0) == 0);
  }
  std::filesystem::remove(path);
}

TEST_CASE("num_hidden_layers beyond 10000 is refused before any per-layer list is built", "[verifier][config]") {
  Json cfg = Json::object();
  cfg["model_type"] = "llama";
  cfg["vocab_size"] = 64;
  cfg["hidden_size"] = 32;
  cfg["intermediate_size"] = 64;
  cfg["num_attention_heads"] = 4;
  cfg["num_hidden_layers"] = 1000000;
  try {
    TransformerConfig::from_hf_json(cfg, "v/config.json");
    FAIL("a 1,000,000-layer config was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()) ==
          "v/config.json: num_hidden_layers 1000000 is more than any decoder this trainer builds (at most 10000)");
  }
  cfg["num_hidden_layers"] = 10000;
  CHECK(TransformerConfig::from_hf_json(cfg, "v/config.json").num_hidden_layers == 10000);
}
