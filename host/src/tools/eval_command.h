// speculators-eval: greedy speculative decoding of a trained draft with its verifier, on any
// machine. Reports the mean acceptance length τ (accepted drafted tokens + the verifier's bonus
// token per verification step, as the EAGLE papers count it), acceptance by draft position,
// tokens/s with and without the draft, and whether every output equals plain greedy decoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

struct EvalOptions {
  std::string verifier;                  // Hugging Face layout directory
  std::string draft;                     // a checkpoint directory (config.json + model.safetensors)
  std::string data;                      // directory with data.jsonl
  std::int64_t num_prompts = 16;         // the last N rows of data.jsonl
  std::int64_t max_new_tokens = 64;
  std::int64_t speculative_tokens = 0;   // 0: the draft's speculative_tokens (config.json), else 3
  std::int64_t prompt_len = 0;           // 0: each row's tokens before its first supervised token
  std::vector<std::string> plugin_dirs;
};

struct EvalReport {
  std::string algorithm;
  std::int64_t prompts = 0, max_new_tokens = 0, k = 0;
  std::int64_t steps = 0, emitted = 0;
  std::vector<std::int64_t> accepted;  // accepted[a] = steps that accepted exactly a drafted tokens
  double tau = 0;                      // emitted / steps
  std::vector<double> at_least;        // at_least[j-1] = share of steps accepting >= j drafted tokens
  std::vector<double> conditional;     // conditional[j-1] = P(accept j | accepted j - 1)
  double greedy_tokens_per_s = 0, speculative_tokens_per_s = 0;
  std::int64_t exact_prompts = 0;      // outputs identical to greedy decoding
  std::optional<double> training_estimate;  // val/acceptance_length_epoch of the run, if found
  std::string training_estimate_source;
};

// Fills the acceptance statistics of `report` from its accepted histogram.
void summarize_acceptance(EvalReport& report);

EvalReport run_eval(const EvalOptions& options);
std::string format_eval_report(const EvalReport& report);
Json eval_report_json(const EvalReport& report);

// The directory of the run that wrote the checkpoint `draft_dir` (its parent; a trailing slash
// is ignored).
std::string run_dir_of(const std::string& draft_dir);

// The last val/acceptance_length_epoch in the metrics.jsonl of the run that wrote `draft_dir`
// (the draft's directory or its parent), if any.
std::optional<double> training_acceptance_estimate(const std::string& draft_dir, std::string* source = nullptr);

}  // namespace speculators
