// The verifier model: layer-id semantics (id k = after k decoder layers), document-aware attention,
// save/load in Hugging Face layout (single file, hand-written shards, tied embeddings), errors
// naming the missing tensor, and the reference's tensor-name resolution
// (speculators/utils/loading.py: _resolve_key).
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <tuple>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "io_test_util.h"
#include "speculators/error.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
#include "tiny_config.h"

using namespace speculators;
namespace fs = std::filesystem;

using speculators::testing::tiny_config;

namespace {

VerifierModel random_verifier(const TransformerConfig& c, std::uint64_t seed = 0) {
  torch::manual_seed(seed);
  VerifierModel m(c);
  nn::init_weights(*m, 0.2);
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);  // norms matter too
  }
  return m;
}

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("speculators_verifier_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

torch::Tensor tokens(std::int64_t b, std::int64_t l, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  return torch::randint(0, 64, {b, l}, torch::kLong);
}

torch::Tensor positions(std::int64_t b, std::int64_t l) {
  return torch::arange(l, torch::kLong).unsqueeze(0).expand({b, l}).contiguous();
}

using test::error_message;

}  // namespace

TEST_CASE("verifier layer ids: 0 = embeddings, n = pre-norm output, logits = lm_head(norm(n))", "[verifier]") {
  torch::NoGradGuard g;
  VerifierModel m = random_verifier(tiny_config());
  const torch::Tensor ids = tokens(2, 6);
  const auto out = m->forward(ids, positions(2, 6), torch::Tensor(), {2, 0, 1});
  REQUIRE(out.hidden_states.size() == 3);
  CHECK(torch::equal(out.hidden_states[1], m->embed_tokens(ids)));

  // Run the layers by hand: id k is the input of layer k.
  nn::RotaryEmbedding rope(m->config());
  const auto tables = rope.tables(positions(2, 6), torch::kFloat);
  const torch::Tensor doc = torch::zeros({6}, torch::kLong);
  const nn::AttentionKernel causal = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    return nn::dense_attention(q, k, v, nn::document_causal_mask(doc, std::nullopt));
  };
  const torch::Tensor h0 = m->embed_tokens(ids);
  const torch::Tensor h1 = m->layers->ptr<nn::DecoderLayerImpl>(0)->forward(h0, tables, causal);
  const torch::Tensor h2 = m->layers->ptr<nn::DecoderLayerImpl>(1)->forward(h1, tables, causal);
  CHECK(torch::allclose(out.hidden_states[2], h1, 1e-5, 1e-5));
  CHECK(torch::allclose(out.hidden_states[0], h2, 1e-5, 1e-5));
  CHECK(torch::allclose(out.logits, m->lm_head(m->norm(h2)), 1e-5, 1e-5));
  CHECK(out.logits.sizes() == torch::IntArrayRef({2, 6, 64}));

  const auto no_logits = m->forward(ids, positions(2, 6), torch::Tensor(), {1}, /*want_logits=*/false);
  CHECK_FALSE(no_logits.logits.defined());
  const std::string msg = error_message([&] { m->forward(ids, positions(2, 6), torch::Tensor(), {3}); });
  CHECK(msg.find("3") != std::string::npos);
  CHECK(msg.find("0..2") != std::string::npos);
  CHECK_THROWS_AS(m->forward(ids, positions(2, 6), torch::Tensor(), {-1}), Error);
}

TEST_CASE("packed documents give the same outputs as separate sequences", "[verifier]") {
  torch::NoGradGuard g;
  for (const char* arch : {"llama", "qwen3"}) {
    VerifierModel m = random_verifier(tiny_config(arch), 3);
    const torch::Tensor a = tokens(1, 5, 1), b = tokens(1, 4, 2);
    // Packed row [a | b | pad pad] with positions restarting per document.
    const torch::Tensor packed = torch::cat({a, b, torch::zeros({1, 2}, torch::kLong)}, 1);
    const torch::Tensor pos = torch::cat({positions(1, 5), positions(1, 4), torch::zeros({1, 2}, torch::kLong)}, 1);
    const torch::Tensor doc = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, -1, -1});
    const auto p = m->forward(packed, pos, doc, {1, 2});
    const auto sa = m->forward(a, positions(1, 5), torch::Tensor(), {1, 2});
    const auto sb = m->forward(b, positions(1, 4), torch::Tensor(), {1, 2});
    for (int i = 0; i < 2; ++i) {
      CHECK(torch::allclose(p.hidden_states[i].slice(1, 0, 5), sa.hidden_states[i], 1e-5, 1e-5));
      CHECK(torch::allclose(p.hidden_states[i].slice(1, 5, 9), sb.hidden_states[i], 1e-5, 1e-5));
    }
    CHECK(torch::allclose(p.logits.slice(1, 5, 9), sb.logits, 1e-5, 1e-5));
    CHECK(torch::isfinite(p.logits).all().item<bool>());
    CHECK(torch::equal(m->forward(packed, pos, doc.unsqueeze(0), {}).logits, p.logits));
    CHECK_THROWS_AS(m->forward(packed, pos, doc.slice(0, 0, 5), {}), Error);
  }
}

TEST_CASE("save_verifier + load_verifier round trip", "[verifier]") {
  torch::NoGradGuard g;
  for (const char* arch : {"llama", "qwen3"}) {
    TempDir dir;
    VerifierModel m = random_verifier(tiny_config(arch), 11);
    save_verifier(*m, dir.str());
    CHECK(fs::exists(dir.path / "config.json"));
    const auto header = SafetensorsFile::read_header((dir.path / "model.safetensors").string());
    CHECK(header.count("model.embed_tokens.weight") == 1);
    CHECK(header.count("model.layers.1.self_attn.q_proj.weight") == 1);
    CHECK(header.count("model.norm.weight") == 1);
    CHECK(header.count("lm_head.weight") == 1);
    CHECK(header.at("lm_head.weight").dtype == "F32");
    CHECK((header.count("model.layers.0.self_attn.q_norm.weight") == 1) == (std::string(arch) == "qwen3"));
    const Json config = Json::read_file((dir.path / "config.json").string());
    CHECK(config.at("model_type") == Json(arch));

    VerifierModel loaded = load_verifier(dir.str());
    const torch::Tensor ids = tokens(2, 7);
    const auto a = m->forward(ids, positions(2, 7), torch::Tensor(), {0, 1, 2});
    const auto b = loaded->forward(ids, positions(2, 7), torch::Tensor(), {0, 1, 2});
    CHECK(torch::equal(a.logits, b.logits));
    for (int i = 0; i < 3; ++i) CHECK(torch::equal(a.hidden_states[i], b.hidden_states[i]));
  }
}

TEST_CASE("a sharded checkpoint loads the same as a single file", "[verifier]") {
  torch::NoGradGuard g;
  TempDir dir;
  VerifierModel m = random_verifier(tiny_config(), 5);
  save_verifier(*m, dir.str());
  const fs::path single = dir.path / "model.safetensors";
  auto all = load_safetensors(single.string());
  std::map<std::string, torch::Tensor> first, second;
  Json weight_map = Json::object();
  for (const auto& kv : all) {
    const bool in_first = kv.first.find("layers.1.") == std::string::npos && kv.first != "lm_head.weight";
    (in_first ? first : second)[kv.first] = kv.second;
    weight_map[kv.first] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors((dir.path / "model-00001-of-00002.safetensors").string(), first);
  save_safetensors((dir.path / "model-00002-of-00002.safetensors").string(), second);
  Json index = Json::object();
  index["metadata"] = Json::object({{"total_size", 0}});
  index["weight_map"] = weight_map;
  write_file_atomic((dir.path / "model.safetensors.index.json").string(), index.dump_python());
  fs::remove(single);

  VerifierModel loaded = load_verifier(dir.str());
  const torch::Tensor ids = tokens(1, 5);
  CHECK(torch::equal(m->forward(ids, positions(1, 5), torch::Tensor(), {}).logits,
                     loaded->forward(ids, positions(1, 5), torch::Tensor(), {}).logits));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "lm_head.weight"), m->lm_head->weight));

  // A shard the index names but that is not there.
  fs::remove(dir.path / "model-00002-of-00002.safetensors");
  const std::string msg = error_message([&] { load_verifier(dir.str()); });
  CHECK(msg.find("model-00002-of-00002.safetensors") != std::string::npos);

  // A shard name that leaves the verifier directory is bad data, refused before any file opens.
  for (const char* escape : {"../../etc/passwd", "/etc/passwd", "..", "sub/model.safetensors"}) {
    weight_map["lm_head.weight"] = escape;
    index["weight_map"] = weight_map;
    write_file_atomic((dir.path / "model.safetensors.index.json").string(), index.dump_python());
    try {
      load_verifier(dir.str());
      FAIL("shard \"" << escape << "\" was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kData);
      CHECK_THAT(e.what(), Catch::Contains("a shard must be a file name inside"));
    }
  }

  // An index that is not JSON, nested too deep or with a number no double holds: bad data too.
  const std::string index_path = (dir.path / "model.safetensors.index.json").string();
  for (const std::string& text : {std::string("{not json"), std::string(50000, '[') + std::string(50000, ']'),
                                  std::string("{\"weight_map\": {\"x\": 1e400}}")}) {
    write_file_atomic(index_path, text);
    try {
      load_verifier(dir.str());
      FAIL("the index " << text.substr(0, 20) << " was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kData);
      CHECK_THAT(e.what(), Catch::StartsWith(index_path + ": invalid JSON"));
    }
  }
}

TEST_CASE("tied embeddings: no lm_head.weight in the file", "[verifier]") {
  torch::NoGradGuard g;
  TransformerConfig c = tiny_config();
  c.tie_word_embeddings = true;
  TempDir dir;
  VerifierModel m = random_verifier(c, 9);
  CHECK(torch::equal(m->lm_head->weight, m->embed_tokens->weight));
  save_verifier(*m, dir.str());
  CHECK(SafetensorsFile::read_header((dir.path / "model.safetensors").string()).count("lm_head.weight") == 0);
  VerifierModel loaded = load_verifier(dir.str());
  CHECK(torch::equal(loaded->lm_head->weight, m->embed_tokens->weight));

  // An untied config whose file lacks the head is bad data (exit 4) naming the file and the key;
  // only the vocabulary mapping's reader falls back to the embedding, as
  // speculators/model.py: DraftVocabMixin._load_verifier_weights does.
  TempDir dir2;
  VerifierModel untied = random_verifier(tiny_config(), 10);
  save_verifier(*untied, dir2.str());
  auto all = load_safetensors((dir2.path / "model.safetensors").string());
  all.erase("lm_head.weight");
  save_safetensors((dir2.path / "model.safetensors").string(), all);
  try {
    load_verifier(dir2.str());
    FAIL("a verifier without lm_head.weight and without tie_word_embeddings loaded");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
    CHECK(std::string(e.what()) == (dir2.path / "model.safetensors").string() +
                                       ": tensor 'lm_head.weight' is missing and " +
                                       (dir2.path / "config.json").string() +
                                       " does not set \"tie_word_embeddings\": true (add it if this model shares "
                                       "its embedding with the head)");
  }
  CHECK(torch::equal(read_verifier_tensor(dir2.str(), "lm_head.weight"), untied->embed_tokens->weight));
}

TEST_CASE("load errors name the missing tensor, the wrong shape and the file", "[verifier]") {
  torch::NoGradGuard g;
  TempDir dir;
  VerifierModel m = random_verifier(tiny_config(), 12);
  save_verifier(*m, dir.str());
  const std::string file = (dir.path / "model.safetensors").string();
  auto all = load_safetensors(file);
  auto broken = all;
  broken.erase("model.layers.1.mlp.up_proj.weight");
  save_safetensors(file, broken);
  std::string msg = error_message([&] { load_verifier(dir.str()); });
  CHECK(msg.find("model.layers.1.mlp.up_proj.weight") != std::string::npos);
  CHECK(msg.find(file) != std::string::npos);

  broken = all;
  broken["model.norm.weight"] = torch::ones({31});
  save_safetensors(file, broken);
  msg = error_message([&] { load_verifier(dir.str()); });
  CHECK(msg.find("model.norm.weight") != std::string::npos);
  CHECK(msg.find("31") != std::string::npos);

  fs::remove(file);
  msg = error_message([&] { load_verifier(dir.str()); });
  CHECK(msg.find("model.safetensors") != std::string::npos);

  TempDir empty;
  msg = error_message([&] { load_verifier(empty.str()); });
  CHECK(msg.find("config.json") != std::string::npos);

  // A config.json with an unsupported model_type names the file.
  Json config = Json::read_file((dir.path / "config.json").string());
  config["model_type"] = "gemma";
  write_file_atomic((dir.path / "config.json").string(), config.dump_python());
  msg = error_message([&] { load_verifier(dir.str()); });
  CHECK(msg.find((dir.path / "config.json").string()) != std::string::npos);
  CHECK(msg.find("llama, mistral, qwen2, qwen3, qwen3_moe") != std::string::npos);

  // Read for its widths only (pre-computed features), a config still builds no verifier.
  const TransformerConfig widths = TransformerConfig::from_hf_json(config, "gemma/config.json", true);
  CHECK(widths.widths_only);
  msg = error_message([&] { VerifierModel model(widths); });
  CHECK(msg.find("gemma") != std::string::npos);
  CHECK(msg.find("--data-source files") != std::string::npos);
}

// The exit code and message of the speculators::Error that `action` throws.
template <class F>
std::pair<ExitCode, std::string> error_of(F&& action) {
  try {
    action();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  FAIL("expected speculators::Error, nothing was thrown");
  return {ExitCode::kOk, ""};
}

TEST_CASE("a bad verifier file is a data error: missing, mis-shaped, mis-typed or non-finite tensors", "[verifier]") {
  torch::NoGradGuard g;
  TempDir dir;
  VerifierModel m = random_verifier(tiny_config(), 12);
  save_verifier(*m, dir.str());
  const std::string file = (dir.path / "model.safetensors").string();
  const auto all = load_safetensors(file);
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  REQUIRE(all.count(name) == 1);
  const auto shape = all.at(name).sizes().vec();

  auto broken = all;
  broken.erase(name);
  save_safetensors(file, broken);
  auto [code, msg] = error_of([&] { load_verifier(dir.str()); });
  CHECK(code == ExitCode::kData);
  CHECK(msg == file + ": tensor '" + name + "' is missing (needed by the llama verifier in " + dir.str() + ")");

  broken = all;
  broken[name] = torch::ones({3, 5});
  save_safetensors(file, broken);
  std::tie(code, msg) = error_of([&] { load_verifier(dir.str()); });
  CHECK(code == ExitCode::kData);
  CHECK(msg.find("has shape [3, 5]") != std::string::npos);

  broken = all;
  broken[name] = torch::zeros(shape, torch::kLong);
  save_safetensors(file, broken);
  std::tie(code, msg) = error_of([&] { load_verifier(dir.str()); });
  CHECK(code == ExitCode::kData);
  CHECK(msg == file + ": tensor '" + name + "' has dtype Long; verifier weights must be floating point " +
                   "(float32, bfloat16 or float16)");

  for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    broken = all;
    torch::Tensor t = all.at(name).clone();
    t.view({-1})[7] = bad;
    broken[name] = t;
    save_safetensors(file, broken);
    std::tie(code, msg) = error_of([&] { load_verifier(dir.str()); });
    CHECK(code == ExitCode::kData);
    CHECK(msg == file + ": tensor '" + name + "' has a non-finite value (NaN or Inf) at flat index 7");
  }

  // The head read alone (what a draft's vocabulary mapping reads) is checked the same way.
  broken = all;
  torch::Tensor embed = all.at("model.embed_tokens.weight").clone();
  embed.view({-1})[0] = std::nan("");
  broken["model.embed_tokens.weight"] = embed;
  save_safetensors(file, broken);
  std::tie(code, msg) = error_of([&] { read_verifier_tensor(dir.str(), "embed_tokens.weight"); });
  CHECK(code == ExitCode::kData);
  CHECK(msg == file + ": tensor 'model.embed_tokens.weight' has a non-finite value (NaN or Inf) at flat index 0");

  fs::remove(file);
  std::tie(code, msg) = error_of([&] { load_verifier(dir.str()); });
  CHECK(code == ExitCode::kData);
}

TEST_CASE("read_verifier_tensor: exact, suffix, then aliases", "[verifier]") {
  TempDir dir;
  const torch::Tensor e = torch::randn({8, 4}), h = torch::randn({8, 4}), n = torch::randn({4});
  const torch::Tensor decoy = torch::randn({4});
  const std::string file = (dir.path / "model.safetensors").string();

  // Suffix matches on a '.' boundary; a layer norm is never taken for the final norm.
  save_safetensors(file, {{"language_model.model.embed_tokens.weight", e},
                          {"language_model.lm_head.weight", h},
                          {"language_model.model.norm.weight", n},
                          {"language_model.model.layers.0.post_attention_layernorm.weight", decoy}});
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "embed_tokens.weight"), e));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "lm_head.weight"), h));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "model.norm.weight"), n));

  // Aliases of other layouts (original Llama, llm.*).
  save_safetensors(file, {{"tok_embeddings.weight", e}, {"output.weight", h}, {"norm.weight", n},
                          {"layers.0.attention_norm.weight", decoy}});
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "embed_tokens.weight"), e));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "lm_head.weight"), h));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "model.norm.weight"), n));
  save_safetensors(file, {{"model.llm.embed.weight", e}, {"model.llm.unembed.weight", h}});
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "embed_tokens.weight"), e));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "lm_head.weight"), h));
  CHECK_FALSE(read_verifier_tensor(dir.str(), "model.norm.weight").defined());

  // Exact beats suffix; lm_head falls back to the embedding.
  save_safetensors(file, {{"embed_tokens.weight", e}, {"model.embed_tokens.weight", h}});
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "embed_tokens.weight"), e));
  CHECK(torch::equal(read_verifier_tensor(dir.str(), "lm_head.weight"), e));

  const std::string msg = error_message([&] { read_verifier_tensor(dir.str(), "fc.weight"); });
  CHECK(msg.find("fc.weight") != std::string::npos);
  CHECK(msg.find("embed_tokens.weight, lm_head.weight, model.norm.weight") != std::string::npos);
}

TEST_CASE("read_verifier_config_json uses the text_config of multimodal models", "[verifier]") {
  TempDir dir;
  const Json text = tiny_config("qwen3").to_hf_json();
  Json root = Json::object();
  root["architectures"] = Json(std::vector<std::string>{"Qwen3VLForConditionalGeneration"});
  root["model_type"] = "qwen3_vl";
  root["text_config"] = text;
  root["text_config"].as_object().erase("architectures");
  write_file_atomic((dir.path / "config.json").string(), root.dump_python());
  const Json got = read_verifier_config_json(dir.str());
  CHECK(got.at("model_type") == Json("qwen3"));
  CHECK(got.at("hidden_size") == Json(32));
  CHECK(got.at("architectures").as_string_list() == std::vector<std::string>{"Qwen3VLForConditionalGeneration"});
}

TEST_CASE("read_verifier_config_json: a config.json that is not JSON or nests too deep is exit 2", "[verifier]") {
  TempDir dir;
  const std::string path = (dir.path / "config.json").string();
  for (const std::string& text : {"{\"a\":" + std::string(50000, '[') + std::string(50000, ']') + "}",
                                  std::string("{\"rms_norm_eps\": 1e400}"), std::string("{\"model_type\": ")}) {
    std::ofstream(path) << text;
    try {
      read_verifier_config_json(dir.str());
      FAIL("accepted " << text.substr(0, 20));
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kUsage);
      CHECK(std::string(e.what()).rfind(path + ": invalid JSON", 0) == 0);
    }
  }
}

TEST_CASE("a verifier config too large for this machine is refused before anything is allocated", "[verifier]") {
  TempDir dir;
  const fs::path config = dir.path / "config.json";
  std::ofstream(config) << "{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 1048576, "
                           "\"intermediate_size\": 4194304, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, "
                           "\"num_key_value_heads\": 8}";
  // Two layers of float32 weights: q, k, v, o 2^20 x 2^20, MLP 3 x 2^20 x 2^22, two norms of
  // 2^20; embedding and head 2 x 64 x 2^20, the final norm 2^20.
  const double h = 1048576.0, params = 2 * (4 * h * h + 3 * h * 4194304.0 + 2 * h) + 2 * 64 * h + h;
  const double gib = params * 4 / (1024.0 * 1024 * 1024);
  try {
    load_verifier(dir.str());
    FAIL("a verifier needing terabytes was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    const std::string message = e.what();
    INFO(message);
    CHECK(message.rfind(config.string() + ": num_hidden_layers 2, hidden_size 1048576, intermediate_size 4194304, "
                                           "vocab_size 64 need about " +
                            std::to_string(static_cast<long long>(gib + 0.5)) +
                            " GiB of float32 weights, more than this machine's ",
                        0) == 0);
  }
  TransformerConfig huge = tiny_config();
  huge.num_hidden_layers = 100000000;
  huge.layer_types.clear();
  CHECK_THROWS_WITH(VerifierModel(huge), Catch::Contains("verifier config: num_hidden_layers 100000000"));
}
