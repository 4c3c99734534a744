// speculators-eval: speculative decoding with a trained draft (see eval_command.h).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "observe/allocator.h"
#include "observe/report.h"
#include "observe/threads.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "tools/cli_parse.h"
#include "tools/eval_command.h"
#include "tools/guard.h"

namespace {

int run_main(int argc, char** argv) {
  using namespace speculators;
  CLI::App app{"speculators-eval: greedy speculative decoding of a trained draft with its verifier.\n"
               "Reports the mean acceptance length tau (accepted drafted tokens + the verifier's bonus token\n"
               "per verification step), acceptance by draft position, tokens/s with and without the draft,\n"
               "and checks that every output equals the verifier's plain greedy output (exit 1 if not).\n"
               "Prompts are the last --num-prompts rows of DATA/data.jsonl, each cut before its first\n"
               "supervised token. The result is also written to DRAFT/eval.json, and the run's\n"
               "report.html (in the checkpoint's parent directory) is refreshed to show it."};
  EvalOptions o;
  bool json = false;
  int threads = 0;
  app.add_option("--verifier", o.verifier, "verifier directory (Hugging Face layout)")->required();
  app.add_option("--draft", o.draft, "draft checkpoint directory (config.json + model.safetensors)")->required();
  app.add_option("--data", o.data, "directory holding data.jsonl")->required();
  app.add_option("--num-prompts", o.num_prompts, "prompts to decode")->capture_default_str();
  app.add_option("--max-new-tokens", o.max_new_tokens, "tokens generated per prompt")->capture_default_str();
  app.add_option("--speculative-tokens", o.speculative_tokens,
                 "tokens proposed per step (0: the draft's speculative_tokens from config.json)")
      ->capture_default_str();
  app.add_option("--prompt-len", o.prompt_len, "prompt tokens per row (0: up to the first supervised token)")
      ->capture_default_str();
  app.add_option("--plugin-dir", o.plugin_dirs, "extra plugin directory (repeatable)");
  app.add_option("--num-threads", threads, "CPU threads, as speculators-train --num-threads (N: LibTorch and OpenBLAS both N; 0 = OpenBLAS on every CPU, LibTorch on one)")
      ->capture_default_str();
  app.add_flag("--json", json, "print the result as JSON instead of the table");
  if (const auto status = parse_cli(app, argc, argv)) return *status;
  apply_num_threads(threads);
  keep_large_allocations_on_heap();
  const EvalReport report = run_eval(o);
  const Json j = eval_report_json(report);
  const std::filesystem::path draft(o.draft);
  write_file_atomic((draft / "eval.json").string(), j.dump_python() + "\n");
  // The run's report shows the measured tau next to the training estimate: refresh it.
  const std::filesystem::path run_dir = run_dir_of(o.draft);
  if (!run_dir.empty() && std::filesystem::exists(run_dir / "metrics.jsonl")) {
    try {
      log::info(cat("updated the run report ", write_run_report(run_dir.string())));
    } catch (const Error& e) {
      log::warn(cat("could not update the run report in ", run_dir.string(), ": ", e.what()));
    }
  }
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << format_eval_report(report);
  }
  if (report.exact_prompts != report.prompts) {
    log::error(cat(report.prompts - report.exact_prompts, " of ", report.prompts,
                   " speculative outputs differ from greedy decoding"));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return speculators::run_guarded("speculators-eval", [&] { return run_main(argc, argv); });
}
