// See eval_command.h.
#include "tools/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "data/token_rows.h"
#include "eval/spec_decode.h"
#include "observe/progress.h"
#include "plugin_host/plugin_call.h"
#include "plugin_host/plugin_loader.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/registry.h"
#include "speculators/verifier.h"
#include "tools/draft_loading.h"

namespace speculators {

namespace fs = std::filesystem;

namespace {

// The draft from a checkpoint directory, through the plugin its config.json names.
std::shared_ptr<DraftModel> load_draft(PluginHost& plugins, const std::vector<std::string>& plugin_dirs,
                                       const std::string& dir, const BuildContext& ctx, std::string& algorithm) {
  const fs::path config_path = fs::path(dir) / "config.json";
  const Json config = read_draft_config_json(dir, "--draft");
  if (!config.contains("speculators_model_type") || !config.at("speculators_model_type").is_string()) {
    fail_usage(cat(config_path.string(), ": no speculators_model_type (not a speculators checkpoint)"));
  }
  algorithm = config.at("speculators_model_type").as_string();
  const auto candidates = discover_plugins(plugin_search_path(plugin_search_inputs(plugin_dirs)));
  const auto& entry = plugins.load_for_algorithm(algorithm, candidates);
  // Every plugin the host loads has its ABI major, 2, which includes the proposal API.
  auto model = call_plugin(algorithm, "load",
                           [&] { return load_saved_draft(*entry.algorithm, config, dir, ctx, /*weights_required=*/true); });
  model->eval();
  return model;
}

std::int64_t default_speculative_tokens(const std::string& draft_dir) {
  const Json config = read_draft_config_json(draft_dir, "--draft");
  // speculators_config.proposal_methods[0].speculative_tokens.
  if (config.contains("speculators_config")) {
    const Json& sc = config.at("speculators_config");
    if (sc.contains("proposal_methods") && sc.at("proposal_methods").is_array() &&
        sc.at("proposal_methods").size() > 0) {
      const Json& first = sc.at("proposal_methods").as_array()[0];
      if (first.contains("speculative_tokens") && first.at("speculative_tokens").is_number()) {
        return first.at("speculative_tokens").as_int();
      }
    }
  }
  return 3;
}

std::vector<std::int64_t> prompt_of(const TokenRow& row, std::int64_t prompt_len) {
  const auto n = static_cast<std::int64_t>(row.input_ids.size());
  std::int64_t p = prompt_len;
  if (p <= 0) {
    p = 0;
    while (p < n && row.loss_mask[static_cast<std::size_t>(p)] == 0) ++p;
    if (p == 0 || p == n) p = n / 2;  // no prompt/response boundary: the first half
  }
  p = std::max<std::int64_t>(1, std::min(p, n));
  return std::vector<std::int64_t>(row.input_ids.begin(), row.input_ids.begin() + p);
}

}  // namespace

void summarize_acceptance(EvalReport& r) {
  r.steps = 0;
  r.emitted = 0;
  for (std::size_t a = 0; a < r.accepted.size(); ++a) {
    r.steps += r.accepted[a];
    r.emitted += r.accepted[a] * static_cast<std::int64_t>(a + 1);
  }
  r.tau = r.steps > 0 ? static_cast<double>(r.emitted) / static_cast<double>(r.steps) : 0.0;
  r.at_least.assign(static_cast<std::size_t>(r.k), 0.0);
  r.conditional.assign(static_cast<std::size_t>(r.k), 0.0);
  for (std::int64_t j = 1; j <= r.k; ++j) {
    std::int64_t reached = 0, passed = 0;  // steps accepting >= j-1 and >= j drafted tokens
    for (std::size_t a = 0; a < r.accepted.size(); ++a) {
      if (static_cast<std::int64_t>(a) >= j - 1) reached += r.accepted[a];
      if (static_cast<std::int64_t>(a) >= j) passed += r.accepted[a];
    }
    r.at_least[static_cast<std::size_t>(j - 1)] = r.steps > 0 ? static_cast<double>(passed) / r.steps : 0.0;
    r.conditional[static_cast<std::size_t>(j - 1)] = reached > 0 ? static_cast<double>(passed) / reached : 0.0;
  }
}

std::string run_dir_of(const std::string& draft_dir) {
  fs::path p = fs::path(draft_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "ckpt/3/" -> "ckpt/3"
  return p.parent_path().string();
}

std::optional<double> training_acceptance_estimate(const std::string& draft_dir, std::string* source) {
  for (const fs::path& dir : {fs::path(draft_dir), fs::path(run_dir_of(draft_dir))}) {
    const fs::path metrics = dir / "metrics.jsonl";
    if (!fs::exists(metrics)) continue;
    std::ifstream in(metrics);
    std::string line;
    std::optional<double> last;
    while (std::getline(in, line)) {
      if (line.find("val/acceptance_length_epoch") == std::string::npos) continue;
      try {
        const Json j = Json::parse(line, metrics.string());
        if (j.contains("val/acceptance_length_epoch")) last = j.at("val/acceptance_length_epoch").as_double();
      } catch (const Error&) {
        // A torn last line of a running job is not worth failing the evaluation for.
      }
    }
    if (last) {
      if (source) *source = metrics.string();
      return last;
    }
  }
  return std::nullopt;
}

EvalReport run_eval(const EvalOptions& o) {
  if (o.num_prompts < 1) fail_usage(cat("--num-prompts must be at least 1, got ", o.num_prompts));
  if (o.max_new_tokens < 1) fail_usage(cat("--max-new-tokens must be at least 1, got ", o.max_new_tokens));
  if (o.speculative_tokens < 0) fail_usage(cat("--speculative-tokens must be >= 1, got ", o.speculative_tokens));
  if (!fs::is_directory(o.verifier)) fail_usage(cat("--verifier ", o.verifier, ": not a directory"));
  if (!fs::is_directory(o.data)) fail_usage(cat("--data ", o.data, ": not a directory"));
  const auto rows = read_data_jsonl((fs::path(o.data) / "data.jsonl").string());

  BuildContext ctx;
  ctx.verifier_json = read_verifier_config_json(o.verifier);
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, o.verifier + "/config.json");
  ctx.verifier_path = o.verifier;
  Registry registry;
  PluginHost plugins(registry);
  EvalReport report;
  auto model = load_draft(plugins, o.plugin_dirs, o.draft, ctx, report.algorithm);
  VerifierModel verifier = load_verifier(o.verifier);
  verifier->eval();

  report.k = o.speculative_tokens > 0 ? o.speculative_tokens : default_speculative_tokens(o.draft);
  report.max_new_tokens = o.max_new_tokens;
  report.accepted.assign(static_cast<std::size_t>(report.k + 1), 0);
  const auto n = std::min<std::int64_t>(o.num_prompts, static_cast<std::int64_t>(rows.size()));
  double greedy_s = 0, spec_s = 0;
  ProgressBar bar("evaluating", n);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& row = rows[rows.size() - static_cast<std::size_t>(n - i)];
    const auto prompt = prompt_of(row, o.prompt_len);
    const auto greedy = greedy_decode(*verifier, prompt, o.max_new_tokens);
    auto proposer = call_plugin(report.algorithm, "proposer", [&] { return model->make_proposer(); });
    if (!proposer) fail(cat("algorithm ", report.algorithm, " has no proposal API (make_proposer returned null)"),
                        ExitCode::kPlugin);
    const auto layer_ids = call_plugin(report.algorithm, "proposer", [&] { return model->target_layer_ids(); });
    // The proposer's extend and propose run inside the decoding loop: what they throw is the plugin's.
    const auto spec = call_plugin(report.algorithm, "proposer", [&] {
      return speculative_decode(*verifier, *proposer, layer_ids, prompt, o.max_new_tokens, report.k);
    });
    for (std::size_t a = 0; a < spec.accepted.size(); ++a) report.accepted[a] += spec.accepted[a];
    if (spec.tokens == greedy.tokens) ++report.exact_prompts;
    greedy_s += greedy.seconds;
    spec_s += spec.seconds;
    bar.update(i + 1, "prompts");
  }
  bar.finish("prompts");
  report.prompts = n;
  summarize_acceptance(report);
  const double tokens = static_cast<double>(n * o.max_new_tokens);
  report.greedy_tokens_per_s = greedy_s > 0 ? tokens / greedy_s : 0;
  report.speculative_tokens_per_s = spec_s > 0 ? tokens / spec_s : 0;
  report.training_estimate = training_acceptance_estimate(o.draft, &report.training_estimate_source);
  return report;
}

std::string format_eval_report(const EvalReport& r) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(3);
  s << "speculative decoding (greedy): " << r.algorithm << " draft, " << r.prompts << " prompts, " << r.max_new_tokens
    << " new tokens each, k = " << r.k << "\n";
  s << "  acceptance length tau      " << r.tau << "  (accepted + bonus per verifier step, max " << r.k + 1 << ")\n";
  if (r.training_estimate) {
    s << "  training estimate          " << *r.training_estimate << "  (1 + sum of validation full_acc_k, "
      << r.training_estimate_source << ")\n";
  }
  s << "  accepted >= j drafted      ";
  for (std::size_t j = 0; j < r.at_least.size(); ++j) s << (j ? "  " : "") << j + 1 << ": " << r.at_least[j];
  s << "\n  conditional acceptance     ";
  for (std::size_t j = 0; j < r.conditional.size(); ++j) s << (j ? "  " : "") << j + 1 << ": " << r.conditional[j];
  s << std::setprecision(1) << "\n  tokens/s                   verifier alone " << r.greedy_tokens_per_s
    << ", with draft " << r.speculative_tokens_per_s << std::setprecision(2) << ", speedup "
    << (r.greedy_tokens_per_s > 0 ? r.speculative_tokens_per_s / r.greedy_tokens_per_s : 0.0) << "x\n";
  s << "  exact                      " << r.exact_prompts << "/" << r.prompts
    << " outputs identical to greedy decoding\n";
  return s.str();
}

Json eval_report_json(const EvalReport& r) {
  Json j = Json::object({{"algorithm", r.algorithm},
                         {"prompts", r.prompts},
                         {"max_new_tokens", r.max_new_tokens},
                         {"speculative_tokens", r.k},
                         {"steps", r.steps},
                         {"emitted_tokens", r.emitted},
                         {"acceptance_length", r.tau},
                         {"accepted_histogram", Json(r.accepted)},
                         {"accepted_at_least", Json(r.at_least)},
                         {"conditional_acceptance", Json(r.conditional)},
                         {"greedy_tokens_per_s", r.greedy_tokens_per_s},
                         {"speculative_tokens_per_s", r.speculative_tokens_per_s},
                         {"speedup", r.greedy_tokens_per_s > 0 ? r.speculative_tokens_per_s / r.greedy_tokens_per_s
                                                               : 0.0},
                         {"exact_prompts", r.exact_prompts}});
  if (r.training_estimate) j["training_acceptance_length"] = *r.training_estimate;
  return j;
}

}  // namespace speculators
