// speculators-bench: times training steps (forward + backward + optimizer) of an algorithm
// plugin at named shapes and relates the achieved matrix-product rate to a plain matrix product
// measured in the same run. docs/performance.md explains the numbers and the cost model.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "observe/allocator.h"
#include "observe/threads.h"
#include "plugin_host/plugin_loader.h"
#include "shapes.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/registry.h"
#include "step_bench.h"
#include "tools/cli_parse.h"
#include "tools/guard.h"
#include "train/device.h"

namespace fs = std::filesystem;
using namespace speculators;
using namespace speculators::bench;

namespace {

int run_main(int argc, char** argv) {
  CLI::App app{"speculators-bench: training-step throughput of algorithm plugins at named shapes.\n"
               "Each step is forward (under the trainer's autocast) + backward + AdamW on one packed row.\n"
               "GFLOP/s counts the matrix products LibTorch's profiler sees in one step; the reference is a\n"
               "plain square matrix product in the step's precision on the same device, measured in the same\n"
               "run before and after the timed steps (best repetition)."};
  std::vector<std::string> shape_names = {"tiny", "small", "8b-slice"};
  std::vector<std::string> algorithms = {"eagle3", "myalgo"};
  std::vector<std::string> plugin_dirs;
  std::string device = "auto", precision;
  StepBenchOptions options;
  int threads = 0, blas = 0;
  bool json = false;
  app.add_option("--shape", shape_names, "shapes to run: tiny, small, 8b-slice (repeatable)")->capture_default_str();
  app.add_option("--algorithm", algorithms, "algorithm plugins to time (repeatable)")->capture_default_str();
  app.add_option("--device", device, "auto, cpu, cuda or cuda:N (as speculators train --device)")
      ->capture_default_str();
  app.add_option("--precision", precision, "fp32 or bf16 autocast (default: bf16 on CUDA, fp32 on the CPU)");
  app.add_option("--warmup", options.warmup, "untimed steps before timing")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--iters", options.iters, "timed steps (the step time is their median)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--rate-reps", options.rate_reps,
                 "repetitions of the reference matrix product before and again after the timed steps")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--num-threads", threads, "CPU threads, as speculators-train --num-threads (N: LibTorch and OpenBLAS both N; 0 = OpenBLAS on every CPU, LibTorch on one)")->capture_default_str();
  app.add_option("--blas-threads", blas, "OpenBLAS threads (0 = as speculators train chooses)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  std::int64_t seq_len = 0, ttt_steps = 0;
  app.add_option("--seq-len", seq_len, "tokens in the packed row of each chosen shape (default: the shape's; documents keep "
                                      "the shape's length, the last one may be shorter)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  app.add_option("--ttt-steps", ttt_steps, "eagle3 training-time-test steps K for each chosen shape (default: the shape's)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{64}));
  app.add_option("--plugin-dir", plugin_dirs, "extra plugin directory (repeatable)");
  std::string compare, python, script = SPECULATORS_BENCH_REFERENCE_SCRIPT;
  app.add_option("--compare", compare,
                 "reference: also time the reference's own EAGLE-3 training step (speculators' Eagle3DraftModel, "
                 "in the test venv's Python) at the same shape, weights and row, and transformers' forward of a "
                 "verifier of the shape's widths against this project's on the same tokens; print the ratios")
      ->check(CLI::IsMember({"reference"}));
  app.add_option("--python", python,
                 "Python with the reference installed (default: $SPECULATORS_TEST_PYTHON, $SPECULATORS_VENV/bin/python, "
                 "~/.cache/speculators/venv/bin/python)");
  app.add_option("--reference-script", script, "the reference step script")->capture_default_str();
  app.add_flag("--json", json, "one JSON object per result on stdout instead of the table");
  if (const auto status = parse_cli(app, argc, argv)) return *status;
  options.device = resolve_training_device(device, precision.empty() ? Json() : Json(precision), Json(), 0,
                                           cuda_info());
  apply_num_threads(threads, blas);
  options.allocator = keep_large_allocations_on_heap();
  if (!compare.empty()) {
    if (!options.device.device.is_cpu()) fail_usage("--compare reference: the reference step runs on the CPU; use --device cpu");
    ReferenceOptions ref;
    ref.python = python;
    ref.script = script;
    ref.warmup = options.warmup;
    ref.iters = options.iters;
    reference_python(ref);  // a missing interpreter is reported before any work
    options.reference = ref;
  }
  std::vector<Shape> chosen;
  for (const auto& n : shape_names) {
    auto it = std::find_if(shapes().begin(), shapes().end(), [&](const Shape& s) { return s.name == n; });
    if (it == shapes().end()) fail_usage(cat("--shape ", n, ": unknown; valid: tiny, small, 8b-slice"));
    chosen.push_back(*it);
    if (seq_len > 0) {
      chosen.back().seq_len = seq_len;
      chosen.back().doc_len = std::min(chosen.back().doc_len, seq_len);
    }
    if (ttt_steps > 0) chosen.back().ttt_steps = ttt_steps;
  }
  Registry registry;
  PluginHost plugins(registry);
  const auto candidates = discover_plugins(plugin_search_path(plugin_search_inputs(plugin_dirs)));
  const fs::path work = fs::temp_directory_path() / ("speculators_bench_" + std::to_string(::getpid()));
  fs::create_directories(work);
  if (!json) print_header(options, torch::get_num_threads(), blas_threads());
  for (const auto& name : algorithms) {
    const Algorithm& algorithm = *plugins.load_for_algorithm(name, candidates).algorithm;
    for (const auto& shape : chosen) {
      const Result r = run_step_bench(algorithm, name, shape, options, work);
      if (json) {
        std::cout << to_json(r).dump() << std::endl;
      } else {
        print_row(r);
        std::fflush(stdout);
      }
    }
  }
  fs::remove_all(work);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-bench", [&] { return run_main(argc, argv); });
}
