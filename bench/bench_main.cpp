// speculators-bench: times training steps (forward + backward + optimizer) of an algorithm
// plugin at named shapes and relates the achieved matrix-product rate to a plain matrix product
// measured in the same run. docs/performance.md explains the numbers and the cost model.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "data/packing.h"
#include "observe/threads.h"
#include "op_profile.h"
#include "plugin_host/plugin_loader.h"
#include "shapes.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/registry.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
#include "speculators/vocab.h"
#include "tools/guard.h"
#include "tools/job.h"
#include "verifier_stub.h"

namespace fs = std::filesystem;
using namespace speculators;
using namespace speculators::bench;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

struct Result {
  std::string algorithm, shape;
  double step_s = 0, forward_s = 0, backward_s = 0, optimizer_s = 0;
  double tokens_per_s = 0;
  double matmul_gflop = 0;       // per step, counted by the profiler
  double achieved_gflops = 0;    // matmul_gflop / step_s
  double reference_gflops = 0;   // plain square fp32 matrix product, same total work
  double fraction = 0;           // achieved / reference
  double matmul_time_share = 0;  // share of the profiled step's op time spent in matrix products
  std::vector<std::pair<std::string, double>> top_other_ops;  // (op, share of op time)
  std::map<std::string, OpStats> matmul_ops;
  std::int64_t trainable_params = 0;
  double peak_rss_mib = 0;
};

// A plain fp32 matrix product of side n, repeated to about `flops` of work.
double reference_matmul_gflops(double flops, std::int64_t n) {
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm up
  const double per = 2.0 * static_cast<double>(n) * n * n;
  const auto reps = std::max<std::int64_t>(2, static_cast<std::int64_t>(flops / per + 0.5));
  const auto t0 = Clock::now();
  for (std::int64_t i = 0; i < reps; ++i) c = torch::mm(a, b);
  const double s = seconds_since(t0);
  return per * static_cast<double>(reps) / s / 1e9;
}

Batch make_batch(const Algorithm& algorithm, const Shape& shape, std::int64_t aux_layers) {
  std::vector<Sample> samples;
  torch::manual_seed(0);
  for (std::int64_t start = 0; start < shape.seq_len; start += shape.doc_len) {
    const auto t = std::min(shape.doc_len, shape.seq_len - start);
    Sample s;
    s.tensors["input_ids"] = torch::randint(shape.vocab, {t}, torch::kInt64);
    s.tensors["loss_mask"] = torch::ones({t}, torch::kInt64);
    s.tensors["position_ids"] = torch::arange(t, torch::kInt64);
    s.tensors["hidden_states"] = torch::randn({t, aux_layers * shape.hidden});
    s.tensors["verifier_last_hidden_states"] = torch::randn({t, shape.hidden});
    if (auto p = algorithm.preprocess(std::move(s))) samples.push_back(std::move(*p));
  }
  return collate(samples, shape.seq_len);
}

Result run_one(const Algorithm& algorithm, const std::string& name, const Shape& shape, int warmup, int iters,
               const fs::path& work) {
  const fs::path verifier = work / ("verifier_" + shape.name);
  write_verifier_stub(verifier, shape);
  std::vector<std::string> argv = {"--speculator-type", name, "--verifier-name-or-path", verifier.string(),
                                   "--data-path", verifier.string(), "--total-seq-len",
                                   std::to_string(shape.seq_len)};
  if (shape.draft_vocab < shape.vocab) {
    argv.insert(argv.end(), {"--draft-vocab-size", std::to_string(shape.draft_vocab)});
  }
  if (name == "eagle3") argv.insert(argv.end(), {"--ttt-steps", std::to_string(shape.ttt_steps)});
  const Schema schema = merge_schemas(host_schema(), algorithm.schema(), name);
  BuildContext ctx;
  ctx.args = resolve_job(parse_command_line(argv), schema);
  algorithm.validate(ctx.args);
  ctx.verifier_json = read_verifier_config_json(verifier.string());
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, verifier.string() + "/config.json");
  ctx.verifier_path = ctx.verifier_name = verifier.string();
  if (shape.draft_vocab < shape.vocab) ctx.vocab = build_vocab_mapping({}, shape.vocab, shape.draft_vocab);
  auto model = algorithm.from_training_args(ctx);
  if (!model) fail(cat(name, ": the factory returned no model"), ExitCode::kPlugin);
  randomize_frozen_tensors(*model);

  const Batch batch = make_batch(algorithm, shape, static_cast<std::int64_t>(model->target_layer_ids().size()));
  const Json call_args = algorithm.trainer_kwargs(ctx.args).first;
  std::vector<torch::Tensor> trainable;
  Result r;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) trainable.push_back(p), r.trainable_params += p.numel();
  }
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-4));
  model->train();

  auto step = [&](Result* timing) {
    auto t0 = Clock::now();
    optimizer.zero_grad();
    auto out = model->forward(batch, call_args);
    auto t1 = Clock::now();
    out.loss.backward();
    auto t2 = Clock::now();
    optimizer.step();
    auto t3 = Clock::now();
    if (timing) {
      timing->forward_s += std::chrono::duration<double>(t1 - t0).count();
      timing->backward_s += std::chrono::duration<double>(t2 - t1).count();
      timing->optimizer_s += std::chrono::duration<double>(t3 - t2).count();
    }
  };
  for (int i = 0; i < warmup; ++i) step(nullptr);
  for (int i = 0; i < iters; ++i) step(&r);
  r.forward_s /= iters;
  r.backward_s /= iters;
  r.optimizer_s /= iters;
  r.step_s = r.forward_s + r.backward_s + r.optimizer_s;
  r.tokens_per_s = static_cast<double>(shape.seq_len) / r.step_s;

  const OpProfile prof = profile_ops([&] { step(nullptr); });
  r.matmul_gflop = static_cast<double>(prof.matmul_flops) / 1e9;
  r.achieved_gflops = r.matmul_gflop / r.step_s;
  r.matmul_time_share = prof.total_self_us > 0 ? prof.matmul_us / prof.total_self_us : 0;
  std::vector<std::pair<std::string, double>> others;
  for (const auto& [op, s] : prof.ops) {
    if (!OpProfile::is_matmul(op) && prof.total_self_us > 0) others.emplace_back(op, s.self_us / prof.total_self_us);
  }
  std::sort(others.begin(), others.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  others.resize(std::min<std::size_t>(others.size(), 6));
  r.top_other_ops = others;
  for (const auto& [op, s] : prof.ops) {
    if (OpProfile::is_matmul(op)) r.matmul_ops[op] = s;
  }
  r.reference_gflops = reference_matmul_gflops(static_cast<double>(prof.matmul_flops), 2048);
  r.fraction = r.achieved_gflops / r.reference_gflops;
  r.algorithm = name;
  r.shape = shape.name;
  r.peak_rss_mib = peak_rss_mib();
  fs::remove_all(verifier);
  return r;
}

Json to_json(const Result& r) {
  Json top = Json::array();
  for (const auto& [op, share] : r.top_other_ops) top.push_back(Json::object({{"op", op}, {"share", share}}));
  Json mm = Json::object();
  for (const auto& [op, s] : r.matmul_ops) {
    mm[op] = Json::object({{"calls", s.calls}, {"gflop", static_cast<double>(s.flops) / 1e9}, {"self_ms", s.self_us / 1e3}});
  }
  return Json::object({{"algorithm", r.algorithm},
                       {"matmul_ops", mm},
                       {"shape", r.shape},
                       {"threads", static_cast<std::int64_t>(torch::get_num_threads())},
                       {"trainable_params", r.trainable_params},
                       {"step_s", r.step_s},
                       {"forward_s", r.forward_s},
                       {"backward_s", r.backward_s},
                       {"optimizer_s", r.optimizer_s},
                       {"tokens_per_s", r.tokens_per_s},
                       {"matmul_gflop_per_step", r.matmul_gflop},
                       {"achieved_gflops", r.achieved_gflops},
                       {"reference_matmul_gflops", r.reference_gflops},
                       {"fraction_of_matmul_rate", r.fraction},
                       {"matmul_time_share", r.matmul_time_share},
                       {"top_other_ops", top},
                       {"peak_rss_mib", r.peak_rss_mib}});
}

void print_row(const Result& r) {
  std::printf("%-8s %-9s %10.0f %9.3f %7.3f %7.3f %7.3f %9.1f %9.1f %9.1f %6.1f%% %9.0f\n", r.algorithm.c_str(),
              r.shape.c_str(), r.tokens_per_s, r.step_s, r.forward_s, r.backward_s, r.optimizer_s, r.matmul_gflop,
              r.achieved_gflops, r.reference_gflops, 100 * r.fraction, r.peak_rss_mib);
  std::printf("         non-matmul ops (share of op time, matrix products %.0f%%):", 100 * r.matmul_time_share);
  for (const auto& [op, share] : r.top_other_ops) std::printf(" %s %.1f%%", op.c_str(), 100 * share);
  std::printf("\n");
}

}  // namespace

namespace {

int run_main(int argc, char** argv) {
  CLI::App app{"speculators-bench: training-step throughput of algorithm plugins at named shapes.\n"
               "Each step is forward + backward + AdamW on one packed row. GFLOP/s counts the matrix\n"
               "products LibTorch's profiler sees in one step; the reference is a plain fp32 square matrix\n"
               "product of the same total work measured in the same run."};
  std::vector<std::string> shape_names = {"tiny", "small", "8b-slice"};
  std::vector<std::string> algorithms = {"eagle3", "myalgo"};
  std::vector<std::string> plugin_dirs;
  int warmup = 1, iters = 3, threads = 0;
  bool json = false;
  app.add_option("--shape", shape_names, "shapes to run: tiny, small, 8b-slice (repeatable)")->capture_default_str();
  app.add_option("--algorithm", algorithms, "algorithm plugins to time (repeatable)")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps before timing")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--iters", iters, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--num-threads", threads, "LibTorch CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--plugin-dir", plugin_dirs, "extra plugin directory (repeatable)");
  app.add_flag("--json", json, "one JSON object per result on stdout instead of the table");
  CLI11_PARSE(app, argc, argv);
  try {
    apply_num_threads(threads);
    std::vector<Shape> chosen;
    for (const auto& n : shape_names) {
      auto it = std::find_if(shapes().begin(), shapes().end(), [&](const Shape& s) { return s.name == n; });
      if (it == shapes().end()) fail_usage(cat("--shape ", n, ": unknown; valid: tiny, small, 8b-slice"));
      chosen.push_back(*it);
    }
    Registry registry;
    PluginHost plugins(registry);
    const auto candidates = discover_plugins(plugin_search_path(plugin_search_inputs(plugin_dirs)));
    const fs::path work = fs::temp_directory_path() / ("speculators_bench_" + std::to_string(::getpid()));
    fs::create_directories(work);
    if (!json) {
      std::printf("threads %d\n%-8s %-9s %10s %9s %7s %7s %7s %9s %9s %9s %7s %9s\n", torch::get_num_threads(), "algo",
                  "shape", "tokens/s", "step s", "fwd s", "bwd s", "opt s", "GFLOP", "GFLOP/s", "mm GF/s", "of mm",
                  "RSS MiB");
    }
    for (const auto& name : algorithms) {
      const Algorithm& algorithm = *plugins.load_for_algorithm(name, candidates).algorithm;
      for (const auto& shape : chosen) {
        const Result r = run_one(algorithm, name, shape, warmup, iters, work);
        if (json) {
          std::cout << to_json(r).dump() << std::endl;
        } else {
          print_row(r);
          std::fflush(stdout);
        }
      }
    }
    fs::remove_all(work);
  } catch (const Error& e) {
    log::error(e.what());
    return static_cast<int>(e.code());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-bench", [&] { return run_main(argc, argv); });
}
