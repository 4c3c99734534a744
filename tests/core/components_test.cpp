// Base components against straightforward formulas written out here (transformers' Llama/Qwen3
// semantics, EAGLE-3's attention mask): RMSNorm, rotary (with llama3 scaling), the attention
// kernels and masks, the attention, MLP and decoder-layer modules, parameter names and the
// architecture map.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <set>

#include "speculators/error.h"
#include "speculators/nn/components.h"
#include "speculators/nn/document_blocks.h"
#include "tiny_config.h"

using namespace speculators;
using namespace speculators::nn;

using speculators::testing::tiny_config;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// x: [B, heads, L, hd]; rotates pairs (d, d + hd/2) by pos * inv_freq[d] (neox rotate_half).
torch::Tensor rotary_by_loop(const torch::Tensor& x, const std::vector<std::int64_t>& positions,
                             const std::vector<double>& inv_freq) {
  torch::Tensor out = torch::zeros_like(x, torch::kDouble);
  const torch::Tensor xd = x.to(torch::kDouble);
  const auto xa = xd.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  const std::int64_t half = x.size(3) / 2;
  for (std::int64_t b = 0; b < x.size(0); ++b)
    for (std::int64_t h = 0; h < x.size(1); ++h)
      for (std::int64_t l = 0; l < x.size(2); ++l)
        for (std::int64_t d = 0; d < half; ++d) {
          const double angle = static_cast<double>(positions[l]) * inv_freq[d];
          const double x1 = xa[b][h][l][d], x2 = xa[b][h][l][d + half];
          oa[b][h][l][d] = x1 * std::cos(angle) - x2 * std::sin(angle);
          oa[b][h][l][d + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
        }
  return out;
}

std::vector<double> plain_inv_freq(double theta, std::int64_t hd) {
  std::vector<double> f;
  for (std::int64_t j = 0; j < hd / 2; ++j) f.push_back(std::pow(theta, -2.0 * j / hd));
  return f;
}

// Softmax attention written as loops: q [1, nh, L, hd], k/v [1, nkv, S, hd], allowed [L, S].
torch::Tensor attention_by_loop(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& allowed) {
  const std::int64_t nh = q.size(1), l = q.size(2), hd = q.size(3), nkv = k.size(1), s = k.size(2);
  torch::Tensor out = torch::zeros({1, nh, l, hd}, torch::kDouble);
  const torch::Tensor qd = q.to(torch::kDouble), kd = k.to(torch::kDouble), vd = v.to(torch::kDouble);
  const torch::Tensor md = allowed.to(torch::kBool);
  const auto qa = qd.accessor<double, 4>();
  const auto ka = kd.accessor<double, 4>();
  const auto va = vd.accessor<double, 4>();
  const auto ma = md.accessor<bool, 2>();
  auto oa = out.accessor<double, 4>();
  for (std::int64_t h = 0; h < nh; ++h) {
    const std::int64_t kvh = h / (nh / nkv);
    for (std::int64_t i = 0; i < l; ++i) {
      std::vector<double> score(s, -INFINITY);
      double top = -INFINITY;
      for (std::int64_t j = 0; j < s; ++j) {
        if (!ma[i][j]) continue;
        double dot = 0;
        for (std::int64_t d = 0; d < hd; ++d) dot += qa[0][h][i][d] * ka[0][kvh][j][d];
        score[j] = dot / std::sqrt(static_cast<double>(hd));
        top = std::max(top, score[j]);
      }
      double total = 0;
      for (std::int64_t j = 0; j < s; ++j) total += ma[i][j] ? std::exp(score[j] - top) : 0.0;
      for (std::int64_t j = 0; j < s; ++j) {
        if (!ma[i][j]) continue;
        const double p = std::exp(score[j] - top) / total;
        for (std::int64_t d = 0; d < hd; ++d) oa[0][h][i][d] += p * va[0][kvh][j][d];
      }
    }
  }
  return out;
}

std::set<std::string> parameter_names(torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) names.insert(p.key());
  return names;
}

}  // namespace

TEST_CASE("RMSNorm matches the formula in fp32 and casts back before the weight", "[components]") {
  torch::manual_seed(0);
  RMSNorm norm(8, 1e-5);
  {
    torch::NoGradGuard g;
    norm->weight.copy_(torch::randn({8}));
  }
  const torch::Tensor x = torch::randn({2, 3, 8});
  const torch::Tensor y = norm(x);
  const auto xa = x.accessor<float, 3>();
  const auto wa = norm->weight.accessor<float, 1>();
  const auto ya = y.accessor<float, 3>();
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b) {
      double ms = 0;
      for (int d = 0; d < 8; ++d) ms += double(xa[a][b][d]) * xa[a][b][d];
      ms /= 8;
      for (int d = 0; d < 8; ++d) {
        CHECK(ya[a][b][d] == Approx(wa[d] * xa[a][b][d] / std::sqrt(ms + 1e-5)).epsilon(1e-5));
      }
    }

  // bf16 input: normalised in fp32, rounded to bf16, then multiplied by the fp32 weight.
  const torch::Tensor xb = x.to(torch::kBFloat16);
  const torch::Tensor xf = xb.to(torch::kFloat);
  const torch::Tensor expected =
      norm->weight * (xf / torch::sqrt(xf.pow(2).mean(-1, true) + 1e-5)).to(torch::kBFloat16).to(torch::kFloat);
  CHECK(max_abs_diff(norm(xb), expected) < 1e-6);
}

TEST_CASE("fused fp32 RMSNorm: values and gradients of input and weight as the operators in fp64",
          "[components][fused]") {
  torch::manual_seed(3);
  for (const std::int64_t h : {1, 7, 64, 513}) {
    INFO("H " << h);
    RMSNorm norm(h, 1e-6);
    {
      torch::NoGradGuard g;
      norm->weight.copy_(1 + 0.5 * torch::randn({h}));
    }
    // Rows of very different scales, and a non-contiguous input (a transposed view).
    auto x = (torch::randn({h, 5, 3}) * torch::logspace(-3, 3, 3)).transpose(0, 2).requires_grad_(true);
    const auto upstream = torch::randn({3, 5, h});
    const auto y = norm(x);
    REQUIRE(y.grad_fn()->name().find("RMSNorm") != std::string::npos);  // the fused node ran
    (y * upstream).sum().backward();

    // LlamaRMSNorm's expression, by autograd in fp64.
    auto xd = x.detach().to(torch::kDouble).requires_grad_(true);
    auto wd = norm->weight.detach().to(torch::kDouble).requires_grad_(true);
    const auto yd = wd * (xd * torch::rsqrt(xd.pow(2).mean(-1, true) + 1e-6));
    (yd * upstream.to(torch::kDouble)).sum().backward();

    const auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a.to(torch::kDouble) - b).abs().max().item<double>() / b.abs().max().item<double>();
    };
    CHECK(rel(y.detach(), yd.detach()) < 1e-6);
    CHECK(rel(x.grad(), xd.grad()) < 1e-5);
    CHECK(rel(norm->weight.grad(), wd.grad()) < 1e-5);
  }
  // Frozen weight (the verifier's norm): only the input gets a gradient.
  RMSNorm frozen(6, 1e-5);
  frozen->weight.set_requires_grad(false);
  auto x = torch::randn({4, 6}).requires_grad_(true);
  frozen(x).sum().backward();
  CHECK_FALSE(frozen->weight.grad().defined());
  CHECK(x.grad().defined());
}

TEST_CASE("fused fp32 rotary: values and gradients as the expression in fp64", "[components][fused]") {
  torch::manual_seed(6);
  for (const std::int64_t hd : {2, 8, 128}) {
    INFO("hd " << hd);
    // q as the attention makes it: a transposed view of [B, L, heads, hd]; tables [B, L, hd].
    const auto base = torch::randn({2, 5, 3, hd}).requires_grad_(true);
    const auto x = base.transpose(1, 2);
    const RotaryTables tables{torch::randn({2, 5, hd}), torch::randn({2, 5, hd})};
    const auto upstream = torch::randn({2, 3, 5, hd});
    const auto y = apply_rotary(x, tables);
    REQUIRE(y.grad_fn()->name().find("Rotary") != std::string::npos);  // the fused node ran
    (y * upstream).sum().backward();

    // x·cos + rotate_half(x)·sin, by autograd in fp64.
    const auto bd = base.detach().to(torch::kDouble).requires_grad_(true);
    const auto xd = bd.transpose(1, 2);
    const auto cos = tables.cos.to(torch::kDouble).unsqueeze(1), sin = tables.sin.to(torch::kDouble).unsqueeze(1);
    const auto rotated = torch::cat({-xd.narrow(-1, hd / 2, hd / 2), xd.narrow(-1, 0, hd / 2)}, -1);
    const auto yd = xd * cos + rotated * sin;
    (yd * upstream.to(torch::kDouble)).sum().backward();
    CHECK(max_abs_diff(y.detach().to(torch::kDouble), yd.detach()) < 1e-5);
    CHECK(max_abs_diff(base.grad().to(torch::kDouble), bd.grad()) < 1e-5);
  }
  // bf16 takes the expression.
  const RotaryTables bf16{torch::randn({1, 4, 8}, torch::kBFloat16), torch::randn({1, 4, 8}, torch::kBFloat16)};
  const auto xb = torch::randn({1, 2, 4, 8}, torch::kBFloat16).requires_grad_(true);
  CHECK(apply_rotary(xb, bf16).grad_fn()->name().find("Rotary") == std::string::npos);
}

TEST_CASE("rotary inv_freq: plain theta^(-2j/hd) and llama3 scaling by hand", "[components]") {
  TransformerConfig c = tiny_config();
  c.head_dim = 16;
  c.rope_theta = 500000.0;
  const std::vector<double> plain = plain_inv_freq(500000.0, 16);
  torch::Tensor inv = rotary_inv_freq(c);
  REQUIRE(inv.size(0) == 8);
  for (int j = 0; j < 8; ++j) CHECK(inv[j].item<double>() == Approx(plain[j]).epsilon(1e-5));

  // A small original context so that the three regimes (kept, blended, divided) all occur.
  RopeScaling s;
  s.rope_type = "llama3";
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 64;
  c.rope_scaling = s;
  inv = rotary_inv_freq(c);
  const double low_wavelen = 64.0 / 1.0, high_wavelen = 64.0 / 4.0;
  std::set<std::string> regimes;
  for (int j = 0; j < 8; ++j) {
    const double f = plain[j];
    const double wavelen = 2 * 3.14159265358979323846 / f;
    double expected;
    if (wavelen > low_wavelen) {
      expected = f / 8.0;
      regimes.insert("divided");
    } else if (wavelen < high_wavelen) {
      expected = f;
      regimes.insert("kept");
    } else {
      const double smooth = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * f / 8.0 + smooth * f;
      regimes.insert("blended");
    }
    CHECK(inv[j].item<double>() == Approx(expected).epsilon(1e-5));
  }
  CHECK(regimes.size() == 3);
}

TEST_CASE("apply_rotary equals a per-element rotation loop", "[components]") {
  torch::manual_seed(1);
  TransformerConfig c = tiny_config();
  c.head_dim = 6;
  RotaryEmbedding rope(c);
  const std::vector<std::int64_t> positions = {0, 5, 2, 9};
  const torch::Tensor pos = torch::tensor(positions).unsqueeze(0);
  const torch::Tensor x = torch::randn({1, 2, 4, 6});
  const torch::Tensor got = apply_rotary(x, rope.tables(pos, torch::kFloat));
  CHECK(max_abs_diff(got, rotary_by_loop(x, positions, plain_inv_freq(10000.0, 6))) < 1e-5);
}

TEST_CASE("dense_attention equals loop softmax attention with GQA", "[components]") {
  torch::manual_seed(2);
  const torch::Tensor q = torch::randn({1, 4, 3, 2});
  const torch::Tensor k = torch::randn({1, 2, 3, 2});
  const torch::Tensor v = torch::randn({1, 2, 3, 2});
  const torch::Tensor allowed = torch::tensor({1, 0, 0, 1, 1, 0, 0, 1, 1}).view({3, 3}).to(torch::kBool);
  CHECK(max_abs_diff(dense_attention(q, k, v, allowed), attention_by_loop(q, k, v, allowed)) < 1e-5);
}

TEST_CASE("document_causal_mask for lengths [1,2,3] is the reference's matrix", "[components]") {
  // The reference's tests/unit/models/test_eagle3_attention.py case.
  const torch::Tensor mask = document_causal_mask(torch::tensor({0, 1, 1, 2, 2, 2}), std::nullopt);
  const torch::Tensor expected = torch::tensor({1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0,
                                                0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1})
                                     .view({6, 6})
                                     .to(torch::kBool);
  CHECK(torch::equal(mask, expected));

  // Padding (-1) sees only itself and is seen by nobody else; the window keeps q - W < k <= q.
  const torch::Tensor padded = document_causal_mask(torch::tensor({0, 0, 0, -1, -1}), 2);
  const torch::Tensor expected_padded =
      torch::tensor({1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1})
          .view({5, 5})
          .to(torch::kBool);
  CHECK(torch::equal(padded, expected_padded));
}

TEST_CASE("document blocks: first visible keys, query blocks, and hidden keys as the operator expression",
          "[components]") {
  const torch::Tensor doc = torch::tensor({0, 0, 0, 1, 1, -1});
  CHECK(first_visible_keys(doc, std::nullopt) == std::vector<std::int64_t>{0, 0, 0, 3, 3, 5});
  CHECK(first_visible_keys(doc, 2) == std::vector<std::int64_t>{0, 0, 1, 3, 3, 5});
  // Documents need not be contiguous for the rule to hold.
  CHECK(first_visible_keys(torch::tensor({0, 1, 0}), std::nullopt) == std::vector<std::int64_t>{0, 1, 0});
  const std::vector<QueryBlock> blocks = query_blocks(doc, std::nullopt, 4);
  REQUIRE(blocks.size() == 2);
  CHECK((blocks[0].q0 == 0 && blocks[0].q1 == 4 && blocks[0].k0 == 0));
  CHECK((blocks[1].q0 == 4 && blocks[1].q1 == 6 && blocks[1].k0 == 3));
  CHECK_THROWS_AS(query_blocks(doc, std::nullopt, 0), Error);

  // Any block of the mask equals the rule written as tensor operators, on ids with interleaved
  // documents and padding.
  torch::manual_seed(8);
  const torch::Tensor ids = torch::randint(-1, 3, {40}, torch::kLong);
  const torch::Tensor cpu_ids = document_ids_on_cpu(ids);
  for (std::optional<std::int64_t> window : {std::optional<std::int64_t>(), std::optional<std::int64_t>(5)}) {
    const torch::Tensor qi = torch::arange(40).unsqueeze(1), ki = torch::arange(40).unsqueeze(0);
    const torch::Tensor qd = ids.unsqueeze(1), kd = ids.unsqueeze(0);
    torch::Tensor visible = (ki <= qi).logical_and(qd != -1).logical_and(qd == kd);
    if (window) visible = visible.logical_and(ki > qi - *window);
    visible = visible.logical_or(ki == qi);
    for (const auto& [q0, q1, k0, k1] : std::vector<std::array<std::int64_t, 4>>{{0, 40, 0, 40}, {7, 19, 3, 30}, {33, 40, 0, 40}}) {
      INFO("window " << (window ? *window : -1) << " block " << q0 << ".." << q1 << " x " << k0 << ".." << k1);
      CHECK(torch::equal(hidden_keys(cpu_ids, q0, q1, k0, k1, window, torch::kCPU),
                         visible.slice(0, q0, q1).slice(1, k0, k1).logical_not()));
    }
  }
  CHECK_THROWS_AS(hidden_keys(cpu_ids, 0, 41, 0, 40, std::nullopt, torch::kCPU), Error);
  CHECK_THROWS_AS(hidden_keys(ids.to(torch::kInt), 0, 4, 0, 4, std::nullopt, torch::kCPU), Error);
}

TEST_CASE("document_causal_attention equals dense attention with the document mask", "[components]") {
  torch::manual_seed(3);
  // Three documents and two padding positions in one packed row.
  const torch::Tensor doc = torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, -1, -1});
  const std::int64_t l = doc.size(0);
  const torch::Tensor q = torch::randn({2, 4, l, 8}, torch::requires_grad());
  const torch::Tensor k = torch::randn({2, 2, l, 8}, torch::requires_grad());
  const torch::Tensor v = torch::randn({2, 2, l, 8}, torch::requires_grad());
  for (std::optional<std::int64_t> window : {std::optional<std::int64_t>(), std::optional<std::int64_t>(3)}) {
    for (std::int64_t chunk : {1, 5, 64}) {
      INFO("window " << (window ? *window : -1) << " chunk " << chunk);
      const torch::Tensor dense = dense_attention(q, k, v, document_causal_mask(doc, window));
      const torch::Tensor chunked = document_causal_attention(q, k, v, doc, window, chunk);
      CHECK(max_abs_diff(dense, chunked) < 1e-5);
      // Gradients agree too (the draft trains through this kernel).
      const torch::Tensor w = torch::randn_like(dense);
      const auto gd = torch::autograd::grad({(dense * w).sum()}, {q, k, v});
      const auto gc = torch::autograd::grad({(chunked * w).sum()}, {q, k, v});
      for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(gd[i], gc[i]) < 1e-5);
    }
  }
  CHECK_THROWS_AS(document_causal_attention(q, k, v, doc.slice(0, 0, 4), std::nullopt), Error);
}

TEST_CASE("document_causal_attention without autograd equals dense attention", "[components]") {
  // Without autograd, fp32 rows are processed in chunks of at most 128 queries by the in-place
  // kernel; 300 positions make several chunks whose key ranges start inside a document, chunks
  // inside one document (only their own triangle masked) and chunks across documents.
  torch::manual_seed(5);
  std::vector<std::int64_t> ids;
  for (std::int64_t d = 0; d < 3; ++d) ids.insert(ids.end(), 80 + 10 * d, d);  // 80, 90 and 100 positions
  ids.insert(ids.end(), 30, -1);
  const torch::Tensor doc = torch::tensor(ids);
  const torch::Tensor q = torch::randn({2, 6, 300, 8}), k = torch::randn({2, 3, 300, 8}), v = torch::randn({2, 3, 300, 8});
  torch::NoGradGuard no_grad;
  for (std::optional<std::int64_t> window : {std::optional<std::int64_t>(), std::optional<std::int64_t>(40)}) {
    for (std::int64_t chunk : {7, 512}) {
      INFO("window " << (window ? *window : -1) << " chunk " << chunk);
      const torch::Tensor dense = dense_attention(q, k, v, document_causal_mask(doc, window));
      CHECK(max_abs_diff(dense, document_causal_attention(q, k, v, doc, window, chunk)) < 1e-5);
    }
    // One document filling the row (the verifier's unpacked batch), k and v as transposed views.
    const torch::Tensor one = torch::zeros({300}, torch::kLong);
    const torch::Tensor kt = k.transpose(1, 2).contiguous().transpose(1, 2), vt = v.transpose(1, 2).contiguous().transpose(1, 2);
    const torch::Tensor dense = dense_attention(q, k, v, document_causal_mask(one, window));
    CHECK(max_abs_diff(dense, document_causal_attention(q, kt, vt, one, window)) < 1e-5);
  }
}

namespace {
// Whether the autograd graph behind `t` has a node whose name contains `name`.
bool graph_has(const torch::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> todo = {t.grad_fn().get()};
  for (std::size_t i = 0; i < todo.size() && i < 64; ++i) {
    if (todo[i] == nullptr) continue;
    if (todo[i]->name().find(name) != std::string::npos) return true;
    for (const auto& edge : todo[i]->next_edges()) todo.push_back(edge.function.get());
  }
  return false;
}
}  // namespace

TEST_CASE("fused fp32 SiLU·gate: the MLP's values and gradients as the operators in fp64", "[components][fused]") {
  // 13 columns leave a tail after the 8-float vectors; inputs up to ±150 reach the exponent's cap.
  // Without a gradient the product is written over the gate projection: the same values.
  torch::manual_seed(7);
  TransformerConfig c = tiny_config();
  c.intermediate_size = 13;
  MLPImpl mlp(c);
  init_weights(mlp, 0.2);
  for (double scale : {1.0, 150.0}) {
    INFO("input scale " << scale);
    const torch::Tensor x = (torch::randn({2, 7, 32}) * scale).requires_grad_(true);
    const torch::Tensor upstream = torch::randn({2, 7, 32});
    mlp.zero_grad();
    const torch::Tensor y = mlp.forward(x);
    REQUIRE(graph_has(y, "SiluGate"));  // the fused node ran
    (y * upstream).sum().backward();

    const auto w = [](const torch::nn::Linear& l) { return l->weight.detach().to(torch::kDouble).requires_grad_(true); };
    const torch::Tensor xd = x.detach().to(torch::kDouble).requires_grad_(true);
    const torch::Tensor wg = w(mlp.gate_proj), wu = w(mlp.up_proj), wd = w(mlp.down_proj);
    const torch::Tensor yd = torch::matmul(torch::silu(torch::matmul(xd, wg.t())) * torch::matmul(xd, wu.t()), wd.t());
    (yd * upstream.to(torch::kDouble)).sum().backward();
    const auto close = [](const torch::Tensor& got, const torch::Tensor& want) {
      return max_abs_diff(got.to(torch::kDouble), want) <= 1e-5 * (1.0 + want.abs().max().item<double>());
    };
    CHECK(close(y.detach(), yd.detach()));
    CHECK(close(x.grad(), xd.grad()));
    CHECK(close(mlp.gate_proj->weight.grad(), wg.grad()));
    CHECK(close(mlp.up_proj->weight.grad(), wu.grad()));
    CHECK(close(mlp.down_proj->weight.grad(), wd.grad()));
    torch::NoGradGuard no_grad;
    CHECK(close(mlp.forward(x.detach()), yd.detach()));
  }
}

TEST_CASE("decoder layer parameter names and shapes follow Hugging Face", "[components]") {
  TransformerConfig c = tiny_config();
  DecoderLayerImpl llama(c, 0);
  const std::set<std::string> llama_names = {
      "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
      "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
      "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
  CHECK(parameter_names(llama) == llama_names);
  auto params = llama.named_parameters();
  CHECK(params["self_attn.q_proj.weight"].sizes() == torch::IntArrayRef({32, 32}));
  CHECK(params["self_attn.k_proj.weight"].sizes() == torch::IntArrayRef({16, 32}));
  CHECK(params["self_attn.o_proj.weight"].sizes() == torch::IntArrayRef({32, 32}));
  CHECK(params["mlp.gate_proj.weight"].sizes() == torch::IntArrayRef({48, 32}));
  CHECK(params["mlp.down_proj.weight"].sizes() == torch::IntArrayRef({32, 48}));

  // The EAGLE-3 first layer takes 2H into q/k/v.
  DecoderLayerImpl wide(c, 0, 64);
  CHECK(wide.named_parameters()["self_attn.q_proj.weight"].sizes() == torch::IntArrayRef({32, 64}));

  auto qwen3 = make_layer(model_classes("qwen3"), c, 1);
  std::set<std::string> qwen3_names = llama_names;
  qwen3_names.insert("self_attn.q_norm.weight");
  qwen3_names.insert("self_attn.k_norm.weight");
  CHECK(parameter_names(*qwen3) == qwen3_names);
  CHECK(qwen3->named_parameters()["self_attn.q_norm.weight"].sizes() == torch::IntArrayRef({8}));

  c.attention_bias = true;
  DecoderLayerImpl biased(c, 0);
  const std::set<std::string> names = parameter_names(biased);
  for (const char* p : {"q", "k", "v", "o"}) CHECK(names.count(std::string("self_attn.") + p + "_proj.bias") == 1);
}

TEST_CASE("decoder layer on one token equals the written-out pre-norm block", "[components]") {
  // With one position, attention returns v exactly, so the whole layer is closed-form.
  torch::manual_seed(4);
  TransformerConfig c = tiny_config();
  DecoderLayerImpl layer(c, 0);
  init_weights(layer, 0.2);
  const torch::Tensor x = torch::randn({1, 1, 32});
  RotaryEmbedding rope(c);
  const RotaryTables tables = rope.tables(torch::zeros({1, 1}, torch::kLong), torch::kFloat);
  const torch::Tensor doc = torch::zeros({1}, torch::kLong);
  const AttentionKernel kernel = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    return document_causal_attention(q, k, v, doc, std::nullopt);
  };
  auto rms = [](const torch::Tensor& t) { return t / torch::sqrt(t.pow(2).mean(-1, true) + 1e-6); };
  const auto& a = *layer.self_attn;
  const torch::Tensor v = torch::matmul(rms(x), a.v_proj->weight.t()).view({1, 1, 2, 8});
  const torch::Tensor v_per_head = v.repeat_interleave(2, 2).reshape({1, 1, 32});  // GQA: head h uses kv h/2
  const torch::Tensor h = x + torch::matmul(v_per_head, a.o_proj->weight.t());
  const auto& m = *layer.mlp;
  const torch::Tensor n = rms(h);
  const torch::Tensor mlp = torch::matmul(torch::silu(torch::matmul(n, m.gate_proj->weight.t())) *
                                              torch::matmul(n, m.up_proj->weight.t()),
                                          m.down_proj->weight.t());
  CHECK(max_abs_diff(layer.forward(x, tables, kernel), h + mlp) < 1e-5);
}

TEST_CASE("qwen3 attention normalises q and k per head before RoPE", "[components]") {
  torch::manual_seed(5);
  TransformerConfig c = tiny_config("qwen3");
  AttentionImpl attn(c, 32);
  init_weights(attn, 0.2);
  {
    torch::NoGradGuard g;
    attn.q_norm->weight.copy_(torch::rand({8}) + 0.5);
  }
  const torch::Tensor x = torch::randn({1, 3, 32});
  const std::vector<std::int64_t> positions = {0, 1, 7};
  RotaryEmbedding rope(c);
  const auto qkv = attn.project(x, rope.tables(torch::tensor(positions).unsqueeze(0), torch::kFloat));
  torch::Tensor q = torch::matmul(x, attn.q_proj->weight.t()).view({1, 3, 4, 8});
  q = q / torch::sqrt(q.pow(2).mean(-1, true) + 1e-6) * attn.q_norm->weight;
  const torch::Tensor expected = rotary_by_loop(q.transpose(1, 2), positions, plain_inv_freq(10000.0, 8));
  CHECK(max_abs_diff(qkv.q, expected) < 1e-5);
  CHECK(qkv.k.sizes() == torch::IntArrayRef({1, 2, 3, 8}));
}

TEST_CASE("model_classes, override_components and init_weights", "[components]") {
  TransformerConfig c = tiny_config();
  try {
    model_classes("gemma");
    FAIL("expected an Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("gemma") != std::string::npos);
    CHECK(msg.find("llama, mistral, qwen2, qwen3, qwen3_moe") != std::string::npos);
  }

  struct MarkedLayer : DecoderLayerImpl {
    MarkedLayer(const TransformerConfig& config, std::int64_t i) : DecoderLayerImpl(config, i, 64) {}
  };
  ComponentOverrides o;
  o.layer_index = 0;
  o.decoder_layer = [](const TransformerConfig& config, std::int64_t i) {
    return std::make_shared<MarkedLayer>(config, i);
  };
  const ModelClasses classes = override_components(model_classes("llama"), o);
  CHECK(std::dynamic_pointer_cast<MarkedLayer>(make_layer(classes, c, 0)) != nullptr);
  CHECK(std::dynamic_pointer_cast<MarkedLayer>(make_layer(classes, c, 1)) == nullptr);
  CHECK(make_layer(classes, c, 1)->layer_idx == 1);

  c.attention_bias = true;
  c.intermediate_size = 512;
  DecoderLayerImpl layer(c, 0);
  init_weights(layer, 0.02);
  const double sd = layer.mlp->gate_proj->weight.std().item<double>();
  CHECK(sd == Approx(0.02).epsilon(0.05));
  CHECK(layer.self_attn->q_proj->bias.abs().sum().item<double>() == 0.0);
  CHECK(torch::equal(layer.input_layernorm->weight, torch::ones({32})));
}
