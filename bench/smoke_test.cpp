// Runs speculators-bench in its smoke mode (tiny shape, three timed steps, both in-tree plugins) and
// checks what it reports against an independent count: the matrix-product FLOPs of one eagle3
// training step at the tiny shape, computed here from the cost model in docs/performance.md.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>
#include <string>

namespace {

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe)) out += buffer;
  REQUIRE(::pclose(pipe) == 0);
  return out;
}

// One eagle3 step on one packed row: forward, backward, frozen lm_head (input gradient only),
// trainable input_norm (so fc also computes its input gradient). Attention products excluded.
double eagle3_linear_flops(double L, double H, double I, double Vd, double A, double kv, double K) {
  const double targets = 2 * L * H * Vd;
  const double fc = 2 * L * A * H * H;
  const double qkv = 2 * L * 2 * H * (H + 2 * kv);
  const double o = 2 * L * H * H;
  const double mlp = 3 * 2 * L * H * I;
  const double head = 2 * L * H * Vd;
  const double forward = targets + fc + K * (qkv + o + mlp + head);
  const double backward = 2 * fc + K * (2 * (qkv + o + mlp) + head);
  return forward + backward;
}

}  // namespace

TEST_CASE("the benchmark's smoke mode reports consistent numbers for both plugins", "[bench]") {
  const std::string out = run(std::string("\"") + SPECULATORS_BENCH_EXE +
                              "\" --shape tiny --warmup 1 --iters 3 --rate-reps 2 --num-threads 1 --json 2>/dev/null");
  std::map<std::string, nlohmann::json> results;
  std::size_t start = 0;
  while (start < out.size()) {
    const auto end = out.find('\n', start);
    const auto line = out.substr(start, end - start);
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      results[j.at("algorithm").get<std::string>()] = j;
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  REQUIRE(results.size() == 2);
  for (const auto& [name, r] : results) {
    INFO(name << ": " << r.dump());
    CHECK(r.at("shape") == "tiny");
    CHECK(r.at("threads") == 1);
    const double step = r.at("step_s").get<double>();
    CHECK(step > 0);
    CHECK(step == Approx(r.at("forward_s").get<double>() + r.at("backward_s").get<double>() +
                         r.at("optimizer_s").get<double>()));
    CHECK(r.at("tokens_per_s").get<double>() == Approx(512 / step));
    const double gflop = r.at("matmul_gflop_per_step").get<double>();
    CHECK(r.at("achieved_gflops").get<double>() == Approx(gflop / step));
    CHECK(r.at("fraction_of_matmul_rate").get<double>() ==
          Approx(r.at("achieved_gflops").get<double>() / r.at("reference_matmul_gflops").get<double>()));
    CHECK(r.at("peak_rss_mib").get<double>() > 0);
    CHECK(r.at("device") == "cpu");
    CHECK(r.at("precision") == "fp32");
    CHECK(r.at("peak_device_memory_mib").is_null());
    // The step is the median of the timed steps; the reference rate the best of its repetitions
    // before and after them (2 + 2 here).
    const auto& steps = r.at("step_s_spread").at("samples");
    REQUIRE(steps.size() == 3);
    std::vector<double> sorted = {steps[0].get<double>(), steps[1].get<double>(), steps[2].get<double>()};
    std::sort(sorted.begin(), sorted.end());
    CHECK(step == Approx(sorted[1]));
    const auto& rates = r.at("reference_matmul_gflops_spread").at("samples");
    REQUIRE(rates.size() == 4);
    double best = 0;
    for (const auto& x : rates) best = std::max(best, x.get<double>());
    CHECK(r.at("reference_matmul_gflops").get<double>() == Approx(best));
    CHECK(best == Approx(std::max(r.at("reference_matmul_gflops_before").get<double>(),
                                  r.at("reference_matmul_gflops_after").get<double>())));
    CHECK(r.at("trainable_params").get<double>() > 0);
  }
  // tiny: L 512, H 64, I 192, Vd = V = 256, three aux layers, 1 KV head of 32, K = 3.
  const auto& e = results.at("eagle3");
  const double mm = e.at("matmul_ops").at("aten::mm").at("gflop").get<double>() * 1e9;
  CHECK(mm == Approx(eagle3_linear_flops(512, 64, 192, 256, 3, 32, 3)).epsilon(1e-6));
  // Attention (bmm): QK and PV in the forward (2); in backward the recomputed QK and 4 gradient
  // products (dO·Vᵀ, dV, dK, dQ): at most 7 products of 2·hd·nh FLOPs per (query, key) pair, where
  // a 256-query chunk sees at most 256 + K keys.
  const double bmm = e.at("matmul_ops").at("aten::bmm").at("gflop").get<double>() * 1e9;
  CHECK(bmm > 0);
  CHECK(bmm <= 7.0 * 2 * 64 * 3 * 512 * (256 + 3));
}

TEST_CASE("--seq-len and --ttt-steps change the shape that is timed", "[bench]") {
  const std::string out = run(std::string("\"") + SPECULATORS_BENCH_EXE +
                              "\" --shape tiny --algorithm eagle3 --seq-len 192 --ttt-steps 2 --warmup 0 --iters 1 "
                              "--rate-reps 1 --num-threads 1 --json 2>/dev/null");
  const auto r = nlohmann::json::parse(out.substr(0, out.find('\n')));
  INFO(r.dump());
  CHECK(r.at("seq_len") == 192);
  CHECK(r.at("ttt_steps") == 2);
  CHECK(r.at("tokens_per_s").get<double>() == Approx(192 / r.at("step_s").get<double>()));
  const double mm = r.at("matmul_ops").at("aten::mm").at("gflop").get<double>() * 1e9;
  CHECK(mm == Approx(eagle3_linear_flops(192, 64, 192, 256, 3, 32, 2)).epsilon(1e-6));
}

TEST_CASE("a CUDA device that is not there is a usage error (exit 2) that says so", "[bench]") {
  const std::string command = std::string("\"") + SPECULATORS_BENCH_EXE + "\" --shape tiny --device cuda:99 2>&1";
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe)) out += buffer;
  const int status = ::pclose(pipe);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(out.find("--device cuda:99") != std::string::npos);
}

TEST_CASE("--compare reference times the reference's step and transformers' verifier on the same inputs", "[bench]") {
  // The reference (speculators) and transformers run in the test venv's Python.
  const std::string out =
      run(std::string("\"") + SPECULATORS_BENCH_EXE + "\" --shape tiny --algorithm eagle3 --warmup 0 --iters 1 " +
          "--rate-reps 1 --num-threads 1 --compare reference --python \"" + SPECULATORS_BENCH_PYTHON + "\" --json 2>/dev/null");
  const auto r = nlohmann::json::parse(out.substr(0, out.find('\n')));
  const auto& ref = r.at("reference");
  CHECK(ref.at("step_s").get<double>() > 0);
  CHECK(ref.at("speedup").get<double>() == Approx(ref.at("step_s").get<double>() / r.at("step_s").get<double>()));
  const auto& vf = ref.at("verifier_forward");
  CHECK(vf.at("tokens").get<int>() == 512);
  CHECK(vf.at("this_s").get<double>() > 0);
  CHECK(vf.at("transformers").at("forward_s").get<double>() > 0);
  // Both sides ran the same model on the same tokens: transformers' logits equal this project's.
  CHECK(vf.at("transformers").at("max_abs_logit_diff").get<double>() < 1e-4);
}
