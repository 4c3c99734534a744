// The EAGLE-3 draft model on a tiny verifier (H = 32): its state dict against the names and shapes
// of state_spec, the verifier weights, the K-step forward (Eagle3DraftModel.forward) against a
// straightforward re-computation written here, chunked vs dense attention, a few training steps,
// and reloading from config.json.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <random>

#include "config.h"
#include "eagle3_algorithm.h"
#include "model.h"
#include "tiny_verifier.h"
#include "speculators/checkpoint.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/tensor_io.h"
#include "speculators/vocab.h"

using namespace speculators;
using namespace speculators::eagle3;
using namespace speculators::eagle3::testing;
namespace fs = std::filesystem;

namespace {

// Two documents (10 and 8 tokens) and 6 padding positions, as the host packs them after shift_batch.
Batch make_batch(std::uint64_t seed) {
  torch::manual_seed(seed);
  const std::int64_t L = 24;
  std::vector<std::int64_t> doc, pos;
  for (std::int64_t i = 0; i < 10; ++i) doc.push_back(0), pos.push_back(i + 1);
  for (std::int64_t i = 0; i < 8; ++i) doc.push_back(1), pos.push_back(i + 1);
  for (std::int64_t i = 0; i < 6; ++i) doc.push_back(-1), pos.push_back(0);
  auto valid = torch::tensor(doc).ne(-1);
  Batch b;
  b["document_ids"] = torch::tensor(doc).unsqueeze(0);
  b["position_ids"] = torch::tensor(pos).unsqueeze(0);
  b["input_ids"] = (torch::randint(1, kV, {L}, torch::kLong) * valid).unsqueeze(0);
  b["loss_mask"] = (torch::randint(0, 2, {L}, torch::kLong) * valid).unsqueeze(0);
  b["hidden_states"] = (torch::randn({L, kA * kH}) * valid.unsqueeze(1)).unsqueeze(0);
  b["verifier_last_hidden_states"] = (torch::randn({L, kH}) * valid.unsqueeze(1)).unsqueeze(0);
  return b;
}

// The create_combined_mask_mod predicate, element by element.
bool allowed(const std::vector<std::int64_t>& doc, std::int64_t q, std::int64_t kv, std::int64_t W) {
  const std::int64_t L = static_cast<std::int64_t>(doc.size());
  return (kv < L && q >= kv && doc[q] != -1 && doc[q] == doc[kv] && kv > q - W) || kv % L == q;
}

// The Eagle3DraftModel.forward forward and compute_metrics loss for a one-layer llama draft with
// norm_output, written out step by step from the model's own weights, with a dense mask built
// element by element.
torch::Tensor straightforward_loss(Eagle3DraftModel& m, const Batch& b, std::int64_t K, std::int64_t W) {
  torch::NoGradGuard no_grad;
  const std::int64_t L = b.at("input_ids").size(1), nh = 4, nkv = 2, hd = 8;
  const auto doc_t = b.at("document_ids")[0].contiguous();
  const std::vector<std::int64_t> doc(doc_t.data_ptr<std::int64_t>(), doc_t.data_ptr<std::int64_t>() + L);
  auto& layer = *m.layers_->ptr<Eagle3FirstLayerImpl>(0);
  const nn::RotaryEmbedding rotary(m.config().layer);
  auto h = m.fc_(m.input_norm_(b.at("hidden_states")));
  const auto targets = m.verifier_lm_head_(m.verifier_norm_(b.at("verifier_last_hidden_states")))[0];
  const auto mask = b.at("loss_mask")[0].to(torch::kFloat);
  const auto original = b.at("input_ids");
  auto ids = original;
  std::vector<torch::Tensor> keys, values;
  auto loss = torch::zeros({});
  for (std::int64_t k = 0; k < K; ++k) {
    const auto x = torch::cat({m.embed_tokens_(ids), h}, -1);
    const auto embeds = layer.input_layernorm(x.narrow(-1, 0, kH));
    const auto hidden = layer.hidden_norm(x.narrow(-1, kH, kH));
    const auto in = torch::cat({embeds, hidden}, -1);
    const auto tables = rotary.tables(b.at("position_ids") + k, torch::kFloat);
    const auto q = nn::apply_rotary(layer.self_attn->q_proj(in).view({1, L, nh, hd}).transpose(1, 2), tables);
    keys.push_back(nn::apply_rotary(layer.self_attn->k_proj(in).view({1, L, nkv, hd}).transpose(1, 2), tables));
    values.push_back(layer.self_attn->v_proj(in).view({1, L, nkv, hd}).transpose(1, 2));
    const auto all_k = torch::cat(keys, 2).repeat_interleave(nh / nkv, 1);
    const auto all_v = torch::cat(values, 2).repeat_interleave(nh / nkv, 1);
    auto dense = torch::zeros({L, (k + 1) * L}, torch::kBool);
    auto cell = dense.accessor<bool, 2>();
    for (std::int64_t i = 0; i < L; ++i) {
      for (std::int64_t j = 0; j < (k + 1) * L; ++j) cell[i][j] = allowed(doc, i, j, W);
    }
    auto scores = torch::matmul(q, all_k.transpose(-1, -2)) / std::sqrt(8.0);
    scores = scores.masked_fill(dense.logical_not(), -INFINITY);
    const auto attn = torch::matmul(torch::softmax(scores, -1), all_v).transpose(1, 2).reshape({1, L, nh * hd});
    auto out = hidden + layer.self_attn->o_proj(attn);  // norm_before_residual: normalised residual
    out = out + layer.mlp(layer.post_attention_layernorm(out));
    h = m.norm_(out);  // norm_output
    const auto logits = m.lm_head_(h)[0];
    const auto lk = logits.slice(0, 0, L - k), tk = targets.slice(0, k, L), mk = mask.slice(0, k, L);
    const auto kl = (torch::softmax(tk, -1) * (torch::log_softmax(tk, -1) - torch::log_softmax(lk, -1))).sum(-1);
    loss = loss + (kl * mk).sum() / (mk.sum() + 1e-5);
    ids = torch::cat({original.slice(1, k + 1, L), torch::zeros({1, k + 1}, original.options())}, 1);
  }
  return loss;
}

StepOptions steps(std::int64_t K, const std::string& loss = "kl_div") {
  StepOptions o;
  o.ttt_steps = K;
  o.loss = nn::parse_loss_fn(loss);
  return o;
}

}  // namespace

TEST_CASE("state dict: names, shapes and trainability of a real small model", "[eagle3][model]") {
  TinyVerifier v;
  auto m = build(v);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"d2t", {kVd}},
      {"embed_tokens.weight", {kV, kH}},
      {"fc.weight", {kH, kA * kH}},
      {"input_norm.weight", {kA * kH}},
      {"layers.0.hidden_norm.weight", {kH}},
      {"layers.0.input_layernorm.weight", {kH}},
      {"layers.0.mlp.down_proj.weight", {kH, 64}},
      {"layers.0.mlp.gate_proj.weight", {64, kH}},
      {"layers.0.mlp.up_proj.weight", {64, kH}},
      {"layers.0.post_attention_layernorm.weight", {kH}},
      {"layers.0.self_attn.k_proj.weight", {16, 2 * kH}},
      {"layers.0.self_attn.o_proj.weight", {kH, kH}},
      {"layers.0.self_attn.q_proj.weight", {kH, 2 * kH}},
      {"layers.0.self_attn.v_proj.weight", {16, 2 * kH}},
      {"lm_head.weight", {kVd, kH}},
      {"norm.weight", {kH}},
      {"t2d", {kV}},
      {"verifier_lm_head.weight", {kVd, kH}},
      {"verifier_norm.weight", {kH}},
  };
  std::map<std::string, std::vector<std::int64_t>> actual;
  for (const auto& p : m->named_parameters()) {
    actual[p.key()] = p.value().sizes().vec();
    const bool frozen = p.key() == "embed_tokens.weight" || p.key() == "lm_head.weight" ||
                        p.key().rfind("verifier_", 0) == 0;
    INFO(p.key());
    REQUIRE(p.value().requires_grad() == !frozen);
  }
  for (const auto& b : m->named_buffers()) actual[b.key()] = b.value().sizes().vec();
  REQUIRE(actual == expected);
  REQUIRE(m->keys_to_ignore_on_save() == std::vector<std::string>{"verifier_lm_head.weight", "verifier_norm.weight"});
  const auto missing = m->keys_allowed_missing_on_load();
  REQUIRE(missing.size() == 6);
  REQUIRE(m->target_layer_ids() == std::vector<std::int64_t>{2, 3, 3});  // [2, n/2, n-3] for n = 6
  REQUIRE(m->layers()->size() == 1);
}

TEST_CASE("verifier weights: embed, lm_head rows through t2d, final norm", "[eagle3][model]") {
  SECTION("separate lm_head") {
    TinyVerifier v;
    auto m = build(v);
    const auto rows = draft_to_target_ids(m->vocab_mapping());
    REQUIRE(torch::equal(m->embed_tokens_->weight, v.embed));
    REQUIRE(torch::equal(m->lm_head_->weight, v.head.index_select(0, rows)));
    REQUIRE(torch::equal(m->verifier_lm_head_->weight, v.head.index_select(0, rows)));
    REQUIRE(torch::equal(m->verifier_norm_->weight, v.norm));
    // Selected ids: 3, 7, 41, 12 by frequency, then 0, 1, 2, ... padding; sorted.
    REQUIRE(m->t2d_[41].item<bool>());
    REQUIRE_FALSE(m->t2d_[40].item<bool>());
  }
  SECTION("tied embeddings") {
    TinyVerifier v(/*tied=*/true);
    auto m = build(v, Json::object(), /*mapping=*/false);
    REQUIRE(torch::equal(m->lm_head_->weight, v.embed));
    REQUIRE(m->named_buffers().size() == 0);
  }
  SECTION("hidden size mismatch") {
    TinyVerifier v;
    Eagle3DraftModel m(config_from_build_context(v.context(Json::object())));
    m.set_vocab_mapping(v.context(Json::object()).vocab);
    REQUIRE_THROWS_WITH(m.load_verifier_weights(v.dir.string(), 64), Catch::Contains("hidden size 64"));
  }
  SECTION("frozen tensors never loaded are reported") {
    TinyVerifier v;
    Eagle3DraftModel m(config_from_build_context(v.context(Json::object())));
    REQUIRE_THROWS_WITH(m.check_loaded(), Catch::Contains("embed_tokens.weight") && Catch::Contains("verifier_norm.weight"));
    REQUIRE_THROWS_WITH(m.load_verifier_weights(v.dir.string(), kH), Catch::Contains("vocab mapping"));
  }
}

TEST_CASE("forward matches the straightforward K-step computation", "[eagle3][model]") {
  TinyVerifier v;
  auto m = build(v);
  const auto batch = make_batch(3);
  for (const std::int64_t K : {1, 3}) {
    const auto result = m->run(batch, steps(K));
    const auto expected = straightforward_loss(*m, batch, K, /*W=*/4);
    INFO("K = " << K);
    REQUIRE(result.loss.item<double>() == Approx(expected.item<double>()).epsilon(1e-5));
    REQUIRE(result.output.size() == static_cast<std::size_t>(K));
    double sum = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      sum += result.metrics.at("loss_" + std::to_string(k) + "_sum").item<double>();
      REQUIRE(result.output[k].sizes() == torch::IntArrayRef({1, 24}));
      REQUIRE(result.output[k].max().item<std::int64_t>() < kVd);
      for (const char* name : {"full_acc_", "cond_acc_"}) {
        REQUIRE(result.metrics.count(name + std::to_string(k) + "_sum") == 1);
        REQUIRE(result.metrics.count(name + std::to_string(k) + "_total") == 1);
      }
    }
    REQUIRE(result.metrics.at("loss_sum").item<double>() == Approx(sum).epsilon(1e-6));
    REQUIRE(result.metrics.at("loss_total").item<double>() == 1);
    for (const auto& kv : result.metrics) REQUIRE(kv.second.dim() == 0);
  }
}

TEST_CASE("chunked and dense attention give the same loss and gradients", "[eagle3][model]") {
  TinyVerifier v;
  for (const bool norm_output : {true, false}) {
    auto m = build(v, Json::object({{"norm_output", norm_output}, {"num_layers", 2}, {"full_attention_indices",
                                                                                       Json(std::vector<std::int64_t>{1})}}));
    const auto batch = make_batch(5);
    m->set_attention_chunk(5);
    const auto chunked = m->run(batch, steps(3));
    chunked.loss.backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& p : m->named_parameters()) {
      if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
    }
    m->zero_grad();
    m->set_attention_mode(AttentionMode::kDense);
    const auto dense = m->run(batch, steps(3));
    dense.loss.backward();
    INFO("norm_output " << norm_output);
    REQUIRE(chunked.loss.item<double>() == Approx(dense.loss.item<double>()).epsilon(1e-6));
    REQUIRE(grads.size() > 10);
    for (const auto& p : m->named_parameters()) {
      if (!grads.count(p.key())) continue;
      INFO(p.key());
      REQUIRE(torch::allclose(grads[p.key()], p.value().grad(), 1e-5, 1e-5));
    }
  }
}

TEST_CASE("a few optimizer steps fit one batch", "[eagle3][model]") {
  TinyVerifier v;
  auto m = build(v);
  const auto batch = make_batch(9);
  std::vector<torch::Tensor> params;
  for (auto& p : m->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(3e-3));
  const auto first = m->run(batch, steps(2));
  double last = first.loss.item<double>();
  for (int i = 0; i < 60; ++i) {
    opt.zero_grad();
    auto r = m->run(batch, steps(2));
    r.loss.backward();
    opt.step();
    last = r.loss.item<double>();
  }
  const auto after = m->run(batch, steps(2));
  REQUIRE(after.loss.item<double>() < 0.5 * first.loss.item<double>());
  const auto acc = [](const ForwardResult& r) {
    return r.metrics.at("full_acc_0_sum").item<double>() / r.metrics.at("full_acc_0_total").item<double>();
  };
  REQUIRE(acc(after) > acc(first));
  REQUIRE(std::isfinite(last));
}

TEST_CASE("fc_norm and qwen3 variants build and run", "[eagle3][model]") {
  TinyVerifier v;
  auto a = build(v, Json::object({{"fc_norm", true}, {"norm_before_fc", false}}));
  REQUIRE(a->named_parameters().contains("fc_norm.2.weight"));
  REQUIRE_FALSE(a->named_parameters().contains("input_norm.weight"));
  REQUIRE(std::isfinite(a->run(make_batch(1), steps(2)).loss.item<double>()));
  auto b = build(v, Json::object({{"draft_arch", "qwen3"}}));
  REQUIRE(b->named_parameters().contains("layers.0.self_attn.q_norm.weight"));
  REQUIRE(std::isfinite(b->run(make_batch(1), steps(2)).loss.item<double>()));
}

TEST_CASE("forward without verifier states returns draft tokens only", "[eagle3][model]") {
  TinyVerifier v;
  auto m = build(v);
  auto batch = make_batch(2);
  batch.erase("verifier_last_hidden_states");
  const auto r = m->forward(batch, Json::object({{"ttt_steps", 2}}));
  REQUIRE(r.output.size() == 2);
  REQUIRE_FALSE(r.loss.defined());
  REQUIRE(r.metrics.empty());
  auto bad = make_batch(2);
  bad["hidden_states"] = torch::zeros({1, 24, 2 * kH});
  REQUIRE_THROWS_WITH(m->forward(bad, Json()), Catch::Contains("hidden_states"));
}

TEST_CASE("reload from config.json and saved weights", "[eagle3][model]") {
  TinyVerifier v;
  auto a = build(v);
  const Json config = a->config_json();
  const auto ctx = v.context(Json::object(), /*with_mapping=*/true);
  auto ctx_no_vocab = ctx;
  ctx_no_vocab.vocab = VocabMapping{};
  auto b = std::dynamic_pointer_cast<Eagle3DraftModel>(Eagle3Algorithm().from_config(config, ctx_no_vocab));
  REQUIRE(b->config_json() == config);

  SECTION("no mapping anywhere is an error") {
    REQUIRE_THROWS_WITH(b->after_load(ctx_no_vocab), Catch::Contains("d2t/t2d"));
  }
  SECTION("saved tensors restore the model exactly") {
    {
      torch::NoGradGuard no_grad;
      auto saved = a->named_parameters();
      for (auto& p : b->named_parameters()) {
        if (p.key().rfind("verifier_", 0) != 0) p.value().copy_(saved[p.key()]);
      }
      auto buffers = a->named_buffers();
      for (auto& buf : b->named_buffers()) buf.value().copy_(buffers[buf.key()]);
    }
    b->after_load(ctx_no_vocab);
    const auto batch = make_batch(4);
    REQUIRE(a->run(batch, steps(3)).loss.item<double>() == Approx(b->run(batch, steps(3)).loss.item<double>()).epsilon(1e-7));
  }
}

TEST_CASE("preprocess is shift_batch", "[eagle3][model]") {
  Sample s;
  s.tensors["input_ids"] = torch::arange(4, torch::kLong);
  s.tensors["hidden_states"] = torch::zeros({4, 6});
  s.tensors["verifier_last_hidden_states"] = torch::zeros({4, 2});
  s.tensors["loss_mask"] = torch::ones({4}, torch::kLong);
  s.tensors["position_ids"] = torch::arange(4, torch::kLong);
  const auto out = Eagle3Algorithm().preprocess(s);
  REQUIRE(out->tensors.at("input_ids")[0].item<std::int64_t>() == 1);
  REQUIRE(out->tensors.at("input_ids").size(0) == 3);
}

TEST_CASE("a saved checkpoint's header is exactly state_spec", "[eagle3][model]") {
  TinyVerifier v;
  auto m = build(v);
  const auto dir = v.dir / "checkpoint";
  save_draft(*m, dir.string());
  const auto header = SafetensorsFile::read_header((dir / "model.safetensors").string());
  std::size_t saved = 0;
  for (const auto& s : state_spec(m->config())) {
    INFO(s.name);
    if (!s.saved) {
      REQUIRE(header.count(s.name) == 0);
      continue;
    }
    ++saved;
    REQUIRE(header.count(s.name) == 1);
    REQUIRE(header.at(s.name).shape == s.shape);
    REQUIRE(header.at(s.name).dtype == dtype_to_safetensors(s.dtype));
  }
  REQUIRE(header.size() == saved);
  REQUIRE(header.at("embed_tokens.weight").dtype == "BF16");
  REQUIRE(header.at("d2t").dtype == "I64");
  REQUIRE(header.at("t2d").dtype == "BOOL");
  REQUIRE(Json::read_file((dir / "config.json").string()) == m->config_json());
}
