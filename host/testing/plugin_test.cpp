// The plugin test helpers (speculators/testing/plugin_test.h): thin drivers over the host's own
// verifier maker, sampler, online feature source, loader, job resolution, Trainer and
// speculative decoding loop.
#include "speculators/testing/plugin_test.h"

#include <unistd.h>

#include <atomic>
#include <utility>

#include "data/feature_source.h"
#include "data/loader.h"
#include "data/token_rows.h"
#include "eval/sampling.h"
#include "eval/spec_decode.h"
#include "plugin_host/plugin_call.h"
#include "speculators/communicator.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "tools/draft_loading.h"
#include "tools/job.h"
#include "tools/make_verifier.h"
#include "tools/train_command.h"
#include "train/device.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace speculators {
namespace testing {

namespace {

std::vector<TokenRow> sample_rows(const TinyVerifier& verifier, const BatchOptions& options) {
  SampleOptions sample;
  sample.num_samples = options.num_rows;
  sample.seq_len = options.row_length;
  sample.prompt_len = std::max<std::int64_t>(1, options.row_length / 4);
  sample.seed = options.seed;
  torch::NoGradGuard no_grad;
  const SampledSequences sequences = sample_sequences(*verifier.model.ptr(), sample);
  std::vector<TokenRow> rows;
  for (std::int64_t r = 0; r < sequences.input_ids.size(0); ++r) {
    const auto ids = sequences.input_ids[r].contiguous();
    const auto mask = sequences.loss_mask[r].contiguous();
    rows.push_back(TokenRow{std::vector<std::int64_t>(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel()),
                            std::vector<std::int64_t>(mask.data_ptr<std::int64_t>(), mask.data_ptr<std::int64_t>() + mask.numel()),
                            0});
  }
  return rows;
}

bool has_flag(const std::vector<std::string>& flags, const std::string& flag) {
  for (const auto& f : flags)
    if (f == flag || f.rfind(flag + "=", 0) == 0) return true;
  return false;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          cat(prefix, "-", static_cast<long long>(::getpid()), "-", counter.fetch_add(1));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

TinyVerifier make_tiny_verifier(const std::string& dir, const TinyVerifierOptions& options) {
  MakeVerifierOptions make;
  make.arch = options.arch;
  make.hidden_size = options.hidden_size;
  make.num_layers = options.num_layers;
  make.vocab_size = options.vocab_size;
  make.num_heads = options.num_heads;
  make.num_kv_heads = options.num_kv_heads;
  make.seed = options.seed;
  MadeVerifier made = make_structured_verifier(make);
  save_verifier(*made.model, dir);
  TinyVerifier verifier;
  verifier.dir = dir;
  verifier.config_json = read_verifier_config_json(dir);
  verifier.config = TransformerConfig::from_hf_json(verifier.config_json, dir + "/config.json");
  verifier.model = load_verifier(dir);  // as the host reads it back
  verifier.model->eval();
  return verifier;
}

Args resolve_test_job(const Algorithm& algorithm, const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {"--speculator-type", algorithm.name()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  const Schema schema = merge_schemas(host_schema(), algorithm.schema(), algorithm.name());
  return resolve_job(parse_command_line(argv), schema);
}

BuildContext make_build_context(const TinyVerifier& verifier, const Args& args) {
  BuildContext ctx;
  ctx.verifier = verifier.config;
  ctx.verifier_json = verifier.config_json;
  ctx.verifier_path = verifier.dir;
  ctx.verifier_name = verifier.dir;
  ctx.args = args;
  return ctx;
}

std::shared_ptr<DraftModel> build_draft(const Algorithm& algorithm, const BuildContext& ctx) {
  const std::string name = algorithm.name();
  call_plugin(name, "validate", [&] { algorithm.validate(ctx.args); });
  auto model = call_plugin(name, "build", [&] { return algorithm.from_training_args(ctx); });
  if (!model) fail(cat("algorithm ", name, ": the factory returned no model"), ExitCode::kPlugin);
  call_plugin(name, "build", [&] { check_draft_model(*model, name); });
  return model;
}

Batch make_batch(const Algorithm& algorithm, const TinyVerifier& verifier, const std::vector<std::int64_t>& layer_ids,
                 const BatchOptions& options) {
  OnlineFeatureSource source(verifier.model, sample_rows(verifier, options), layer_ids, std::size_t{64} << 20,
                             options.total_len);
  std::vector<std::size_t> indices(source.size());
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  Loader loader(source, algorithm, indices, options.total_len, 0.0, options.seed, /*train=*/false);
  loader.start_epoch(0);
  std::optional<Batch> batch = loader.next();
  if (!batch) fail(cat("make_batch: the loader made no batch from ", options.num_rows, " rows"));
  return *batch;
}

TrainResult train_steps(const Algorithm& algorithm, const TinyVerifier& verifier, const std::string& save_path,
                        std::int64_t steps, const std::vector<std::string>& flags, const BatchOptions& data) {
  std::vector<std::string> all = flags;
  const std::pair<const char*, std::string> defaults[] = {
      {"--verifier-name-or-path", verifier.dir}, {"--save-path", save_path}, {"--data-path", save_path},
      {"--max-steps", std::to_string(steps)},    {"--epochs", std::to_string(steps)},         {"--total-seq-len", std::to_string(data.total_len)},
      {"--num-workers", "0"}};
  for (const auto& [flag, value] : defaults) {
    if (!has_flag(flags, flag)) all.insert(all.end(), {flag, value});
  }
  const Args args = resolve_test_job(algorithm, all);
  const TrainOptions options = TrainOptions::from_args(args);
  const BuildContext ctx = make_build_context(verifier, args);
  torch::manual_seed(static_cast<std::uint64_t>(options.seed));
  std::shared_ptr<DraftModel> model = build_draft(algorithm, ctx);

  OnlineFeatureSource source(verifier.model, sample_rows(verifier, data), model->target_layer_ids(),
                             std::size_t{64} << 20, data.total_len);
  auto [train_idx, val_idx] = split_rows(source.size(), options.data.train_data_ratio);
  const auto seed = static_cast<std::uint64_t>(options.seed);
  Loader train(source, algorithm, train_idx, data.total_len, options.data.noise_std, seed, true);
  Loader val(source, algorithm, val_idx, data.total_len, 0.0, seed, false);
  std::unique_ptr<Communicator> comm = make_local_communicator();
  Trainer trainer(options, algorithm, model, train, val.empty() ? nullptr : &val, *comm, TrainingDevice{}, true);
  const TrainSummary summary = trainer.run();
  TrainResult result;
  result.global_step = summary.global_step;
  result.train_metrics = summary.last_train;
  result.val_metrics = summary.last_val;
  result.save_path = save_path;
  result.last_checkpoint = summary.last_checkpoint;
  return result;
}

std::shared_ptr<DraftModel> load_checkpoint(const Algorithm& algorithm, const TinyVerifier& verifier,
                                            const std::string& checkpoint_dir) {
  const Json saved = Json::read_file((fs::path(checkpoint_dir) / "config.json").string());
  const BuildContext ctx = make_build_context(verifier, resolve_test_job(algorithm));
  return call_plugin(algorithm.name(), "load",
                     [&] { return load_saved_draft(algorithm, saved, checkpoint_dir, ctx, true); });
}

ProposalResult propose(DraftModel& draft, const TinyVerifier& verifier, const std::vector<std::int64_t>& prompt,
                       std::int64_t max_new, std::int64_t k) {
  const std::string name = draft.config_json().get("speculators_model_type", Json("draft")).as_string();
  draft.eval();
  torch::NoGradGuard no_grad;
  ProposalResult result;
  result.greedy = greedy_decode(*verifier.model.ptr(), prompt, max_new).tokens;
  auto proposer = call_plugin(name, "proposer", [&] { return draft.make_proposer(); });
  if (!proposer) fail("the draft has no proposal API (make_proposer returned null)", ExitCode::kPlugin);
  const SpeculativeResult spec = call_plugin(name, "proposer", [&] {
    return speculative_decode(*verifier.model.ptr(), *proposer, draft.target_layer_ids(), prompt, max_new, k);
  });
  result.speculative = spec.tokens;
  result.steps = spec.steps;
  result.acceptance_length = spec.steps > 0 ? static_cast<double>(spec.emitted) / static_cast<double>(spec.steps) : 0.0;
  return result;
}

int run_speculators_train(const std::vector<std::string>& args) { return run_train_command(args); }

}  // namespace testing
}  // namespace speculators
