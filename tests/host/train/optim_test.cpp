// Optimizers and schedules (speculators/train/optimizers.py, torch.optim.Muon): Muon against a
// Newton–Schulz update worked out by hand in double precision with plain loops, AdamW against
// LibTorch's own AdamW, the split of parameters between Muon and AdamW, and the exact round trip of
// optimizer state.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "speculators/error.h"
#include "speculators/log.h"
#include "train/optim.h"

using namespace speculators;

namespace {

using Mat = std::vector<std::vector<double>>;

Mat transpose(const Mat& m) {
  Mat t(m[0].size(), std::vector<double>(m.size()));
  for (std::size_t i = 0; i < m.size(); ++i)
    for (std::size_t j = 0; j < m[0].size(); ++j) t[j][i] = m[i][j];
  return t;
}

Mat matmul(const Mat& a, const Mat& b) {
  Mat c(a.size(), std::vector<double>(b[0].size(), 0.0));
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < b.size(); ++k)
      for (std::size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}

// torch.optim.Muon, step by step: normalise by the Frobenius norm, work on the wide orientation,
// five iterations of X <- aX + (bA + cA^2)X with A = XX^T.
Mat hand_newton_schulz(Mat x) {
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  const bool tall = x.size() > x[0].size();
  if (tall) x = transpose(x);
  double norm = 0;
  for (auto& row : x)
    for (double v : row) norm += v * v;
  norm = std::max(std::sqrt(norm), 1e-7);
  for (auto& row : x)
    for (double& v : row) v /= norm;
  for (int step = 0; step < 5; ++step) {
    Mat A = matmul(x, transpose(x));
    Mat A2 = matmul(A, A);
    Mat P = A;
    for (std::size_t i = 0; i < P.size(); ++i)
      for (std::size_t j = 0; j < P.size(); ++j) P[i][j] = b * A[i][j] + c * A2[i][j];
    Mat PX = matmul(P, x);
    for (std::size_t i = 0; i < x.size(); ++i)
      for (std::size_t j = 0; j < x[0].size(); ++j) x[i][j] = a * x[i][j] + PX[i][j];
  }
  return tall ? transpose(x) : x;
}

torch::Tensor to_tensor(const Mat& m) {
  auto t = torch::zeros({static_cast<long>(m.size()), static_cast<long>(m[0].size())}, torch::kFloat32);
  for (std::size_t i = 0; i < m.size(); ++i)
    for (std::size_t j = 0; j < m[0].size(); ++j) t[i][j] = m[i][j];
  return t;
}

void check_close(const torch::Tensor& got, const Mat& want, double tol) {
  REQUIRE(got.size(0) == static_cast<long>(want.size()));
  for (long i = 0; i < got.size(0); ++i)
    for (long j = 0; j < got.size(1); ++j) CHECK(got[i][j].item<double>() == Approx(want[i][j]).margin(tol));
}

// Two Muon steps on one matrix, against the hand computation of both (momentum, Nesterov,
// decoupled weight decay, match_rms_adamw scaling).
void check_muon_two_steps(const Mat& w0, const Mat& g1, const Mat& g2) {
  const double lr = 0.02, mu = 0.95, wd = 0.1;
  auto p = to_tensor(w0).requires_grad_(true);
  MuonOptions opt;  // the reference's defaults
  Muon muon({{"layers.0.mlp.up_proj.weight", p}}, lr, opt);
  const auto rows = static_cast<double>(w0.size()), cols = static_cast<double>(w0[0].size());
  const double scaled = lr * 0.2 * std::sqrt(std::max(rows, cols));

  Mat w = w0, buf(w0.size(), std::vector<double>(w0[0].size(), 0.0));
  for (const Mat* g : {&g1, &g2}) {
    p.mutable_grad() = to_tensor(*g);
    muon.step();
    Mat nesterov = *g;
    for (std::size_t i = 0; i < w.size(); ++i)
      for (std::size_t j = 0; j < w[0].size(); ++j) {
        buf[i][j] = mu * buf[i][j] + (*g)[i][j];
        nesterov[i][j] = (*g)[i][j] + mu * buf[i][j];
      }
    Mat o = hand_newton_schulz(nesterov);
    for (std::size_t i = 0; i < w.size(); ++i)
      for (std::size_t j = 0; j < w[0].size(); ++j) w[i][j] = w[i][j] * (1 - lr * wd) - scaled * o[i][j];
    check_close(p.detach(), w, 2e-5);
  }
}

}  // namespace

TEST_CASE("Newton-Schulz matches a hand computation on a wide and a tall matrix", "[optim]") {
  const Mat wide = {{0.5, -1.0, 2.0}, {1.5, 0.25, -0.75}};
  check_close(newton_schulz(to_tensor(wide), 5, 1e-7), hand_newton_schulz(wide), 1e-5);
  const Mat tall = transpose(wide);
  check_close(newton_schulz(to_tensor(tall), 5, 1e-7), hand_newton_schulz(tall), 1e-5);
  // The quintic pushes singular values towards ~1 (not exactly: the quintic coefficients).
  torch::Tensor s = torch::linalg_svdvals(newton_schulz(to_tensor(wide), 5, 1e-7));
  CHECK(s.min().item<double>() > 0.6);
  CHECK(s.max().item<double>() < 1.3);
}

TEST_CASE("Muon matches a hand-computed Newton-Schulz update over two steps", "[optim]") {
  check_muon_two_steps({{0.1, -0.2, 0.3}, {0.4, 0.0, -0.1}}, {{0.5, -1.0, 2.0}, {1.5, 0.25, -0.75}},
                       {{-0.3, 0.8, 0.1}, {0.2, -0.6, 0.9}});
  check_muon_two_steps({{0.1, -0.2}, {0.3, 0.4}, {0.0, -0.1}}, {{0.5, -1.0}, {2.0, 1.5}, {0.25, -0.75}},
                       {{-0.3, 0.8}, {0.1, 0.2}, {-0.6, 0.9}});
}

TEST_CASE("Muon's learning-rate scaling", "[optim]") {
  CHECK(muon_adjusted_lr(1e-3, "match_rms_adamw", 64, 256) == Approx(1e-3 * 0.2 * 16));
  CHECK(muon_adjusted_lr(1e-3, "original", 256, 64) == Approx(1e-3 * 2));
  CHECK(muon_adjusted_lr(1e-3, "original", 64, 256) == Approx(1e-3));
}

TEST_CASE("AdamW equals LibTorch's AdamW step for step", "[optim]") {
  torch::manual_seed(3);
  auto a = torch::randn({4, 5}).requires_grad_(true);
  auto b = a.detach().clone().requires_grad_(true);
  AdamW ours({{"w", a}}, 1e-2, AdamWOptions{});
  torch::optim::AdamW theirs({b}, torch::optim::AdamWOptions(1e-2).weight_decay(0.01));
  for (int step = 0; step < 4; ++step) {
    auto g = torch::randn({4, 5});
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.clone();
    ours.step();
    theirs.step();
    CHECK(torch::allclose(a.detach(), b.detach(), 1e-6, 1e-7));
  }
}

TEST_CASE("muon takes 2-D hidden weights; embeddings, heads, norms and vectors go to AdamW", "[optim]") {
  auto w = torch::zeros({4, 8}).requires_grad_(true);
  auto muon = [](const std::string& name, const torch::Tensor& t) {
    return reference_optimizer_group(name, t) == OptimizerGroup::kMuon;
  };
  CHECK(muon("layers.0.self_attn.q_proj.weight", w));
  CHECK(muon("fc.weight", w));
  CHECK_FALSE(muon("embed_tokens.weight", w));
  CHECK_FALSE(muon("lm_head.weight", w));
  CHECK_FALSE(muon("norm.weight", torch::zeros({8}).requires_grad_(true)));
  CHECK_FALSE(muon("x", torch::zeros({1, 8}).requires_grad_(true)));
  CHECK_FALSE(muon("frozen", torch::zeros({4, 8})));
  // The rest of speculators/train/optimizers.py: _ADAMW_NAME_HINTS.
  CHECK_FALSE(muon("vq.codebook", w));
  CHECK_FALSE(muon("markov_w1", w));
  CHECK_FALSE(muon("layers.0.markov_w2.weight", w));
}

namespace {
// --optimizer muon with lr 1e-2 and the host's Muon defaults; --muon-lr unset.
OptimizerOptions muon_options() {
  OptimizerOptions o;
  o.optimizer = "muon";
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  o.muon_momentum = 0.95;
  o.muon_weight_decay = 0.1;
  o.muon_ns_steps = 5;
  o.muon_adjust_lr_fn = "match_rms_adamw";
  return o;
}
}  // namespace

TEST_CASE("a draft's declared optimizer groups decide the split, whatever its module names", "[optim]") {
  const OptimizerOptions args = muon_options();
  const std::vector<NamedParam> params = {{"tok_emb.weight", torch::zeros({16, 8}).requires_grad_(true)},
                                          {"proj.weight", torch::zeros({8, 8}).requires_grad_(true)}};
  // By the reference's names both would go to Muon; the draft says tok_emb is an embedding.
  OptimizerSet declared(args, params, [](const NamedParam& p) {
    return p.name == "tok_emb.weight" ? OptimizerGroup::kAdamW : OptimizerGroup::kMuon;
  });
  REQUIRE(declared.parts().size() == 2);
  CHECK(declared.parts()[0]->kind() == "muon");
  CHECK(declared.parts()[0]->params().size() == 1);
  CHECK(declared.parts()[0]->params()[0].name == "proj.weight");
  CHECK(declared.parts()[1]->params()[0].name == "tok_emb.weight");
  OptimizerSet by_name(args, params);
  REQUIRE(by_name.parts().size() == 1);
  CHECK(by_name.parts()[0]->params().size() == 2);
}

TEST_CASE("optimizer state round-trips exactly and a missing slot is named", "[optim]") {
  const OptimizerOptions args = muon_options();
  torch::manual_seed(5);
  auto make = [] {
    return std::vector<NamedParam>{{"fc.weight", torch::randn({3, 4}).requires_grad_(true)},
                                   {"norm.weight", torch::randn({4}).requires_grad_(true)}};
  };
  auto p1 = make();
  std::vector<NamedParam> p2 = {{"fc.weight", p1[0].param.detach().clone().requires_grad_(true)},
                                {"norm.weight", p1[1].param.detach().clone().requires_grad_(true)}};
  OptimizerSet o1(args, p1), o2(args, p2);
  REQUIRE(o1.parts().size() == 2);
  CHECK(o1.parts()[0]->kind() == "muon");
  CHECK(o1.parts()[0]->base_lr() == Approx(0.1));  // muon_lr unset = 10 x lr
  auto grads = [](std::vector<NamedParam>& ps, int seed) {
    torch::manual_seed(seed);
    for (auto& p : ps) p.param.mutable_grad() = torch::randn_like(p.param);
  };
  grads(p1, 10);
  o1.set_lr_factor(1.0);
  o1.step();
  // Copy the first set's state and weights into the second, then take the same step on both.
  o2.load_state(o1.state(), "test");
  for (std::size_t i = 0; i < p1.size(); ++i) p2[i].param.detach().copy_(p1[i].param.detach());
  grads(p1, 11);
  grads(p2, 11);
  o1.set_lr_factor(0.5);
  o2.set_lr_factor(0.5);
  o1.step();
  o2.step();
  for (std::size_t i = 0; i < p1.size(); ++i) CHECK(torch::equal(p1[i].param, p2[i].param));

  auto state = o1.state();
  CHECK(state.count("muon/fc.weight/momentum_buffer"));
  CHECK(state.at("adamw/norm.weight/exp_avg").scalar_type() == torch::kFloat32);
  CHECK(state.at("adamw/norm.weight/step").item<std::int64_t>() == 2);
  state.erase("adamw/norm.weight/exp_avg");
  try {
    o2.load_state(state, "ckpt/optimizer_state.safetensors");
    FAIL("no error for a missing slot");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("ckpt/optimizer_state.safetensors") != std::string::npos);
    CHECK(std::string(e.what()).find("adamw/norm.weight/exp_avg") != std::string::npos);
  }
}

TEST_CASE("every Muon parameter has a momentum buffer in the state, and a missing one is named", "[optim]") {
  const OptimizerOptions args = muon_options();
  torch::manual_seed(6);
  std::vector<NamedParam> params = {{"fc.weight", torch::randn({3, 4}).requires_grad_(true)},
                                    {"out.weight", torch::randn({4, 3}).requires_grad_(true)}};
  OptimizerSet optim(args, params);
  REQUIRE(optim.parts().size() == 1);
  REQUIRE(optim.parts()[0]->kind() == "muon");
  // Before any step: zeros, which is what the first step starts from.
  NamedTensors fresh = optim.state();
  REQUIRE(fresh.count("muon/fc.weight/momentum_buffer"));
  CHECK(torch::equal(fresh.at("muon/out.weight/momentum_buffer"), torch::zeros({4, 3})));
  // A step with a gradient for fc.weight only: out.weight's buffer stays zeros.
  params[0].param.mutable_grad() = torch::ones({3, 4});
  optim.set_lr_factor(1.0);
  optim.step();
  NamedTensors state = optim.state();
  CHECK(torch::equal(state.at("muon/fc.weight/momentum_buffer"), torch::ones({3, 4})));  // 0.95 x 0 + g
  CHECK(torch::equal(state.at("muon/out.weight/momentum_buffer"), torch::zeros({4, 3})));
  optim.load_state(state, "test");
  for (const char* key : {"muon/fc.weight/momentum_buffer", "muon/out.weight/momentum_buffer"}) {
    NamedTensors missing = state;
    missing.erase(key);
    try {
      optim.load_state(missing, "ckpt/optimizer_state.safetensors");
      FAIL("no error for the missing " << key);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kData);
      CHECK(std::string(e.what()) == cat("ckpt/optimizer_state.safetensors: optimizer state \"", key, "\" is missing"));
    }
  }
}

TEST_CASE("schedules: linear, cosine, none", "[optim]") {
  CHECK(lr_factor("linear", 5, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("linear", 55, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("cosine", 10 + 45, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("cosine", 100, 100, 10, 0.5) == Approx(0.0).margin(1e-12));
  CHECK(lr_factor("none", 99, 100, 10, 0.5) == 1.0);
  SchedulerOptions scheduler;
  scheduler.type = "linear";
  scheduler.num_cosine_cycles = 0.5;
  scheduler.warmup_ratio = 0.1;
  LoopOptions loop;
  loop.epochs = 3;
  loop.max_steps = 250;
  auto s = make_schedule(scheduler, loop, 100);
  CHECK(s.total_steps == 250);  // min(epochs x steps, max_steps)
  CHECK(s.warmup_steps == 25);
}
