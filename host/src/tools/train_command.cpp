// speculators-train: resolve the job, load the algorithm's plugin, build the draft from the
// verifier, then dry-run or train (speculators/train/cli.py: main).
#include "tools/train_command.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>

#include "data/bad_samples.h"
#include "data/feature_files.h"
#include "data/feature_source.h"
#include "data/loader.h"
#include "data/token_rows.h"
#include "observe/host_info.h"
#include "observe/threads.h"
#include "plugin_host/plugin_call.h"
#include "plugin_host/plugin_loader.h"
#include "speculators/checkpoint.h"
#include "speculators/communicator.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/vocab.h"
#include "tools/draft_loading.h"
#include "tools/job.h"
#include "tools/launcher.h"
#include "train/device.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// speculators/train/cli.py: parse_vocab_mappings: explicit paths, then <data-path>/{d2t,t2d}.npy
// (files the user put there), then built from token frequencies when --draft-vocab-size asks for a
// smaller vocabulary. Nothing is written here: a mapping built from frequencies (`built_from` names
// its source) is written into the save path only once the job was accepted (see train), so a
// rejected job leaves no file behind and the data directory is never changed.
VocabMapping resolve_vocab(const Args& args, const TransformerConfig& verifier, const std::string& data_path,
                           std::string& built_from) {
  const auto V = verifier.vocab_size;
  std::string d2t = args.has("d2t_path") ? args.get_string("d2t_path") : "";
  std::string t2d = args.has("t2d_path") ? args.get_string("t2d_path") : "";
  if (d2t.empty() && t2d.empty()) {
    auto dd = fs::path(data_path) / "d2t.npy", tt = fs::path(data_path) / "t2d.npy";
    if (fs::exists(dd) && fs::exists(tt)) d2t = dd.string(), t2d = tt.string();
  }
  if (!d2t.empty() || !t2d.empty()) {
    VocabMapping m = load_vocab_mapping(d2t, t2d);
    const auto vd = m.d2t.size(0);
    if (args.has("draft_vocab_size") && args.get_int("draft_vocab_size") != vd) {
      fail_usage(cat("--draft-vocab-size ", args.get_int("draft_vocab_size"), " disagrees with ", d2t, " (", vd,
                     " entries)"));
    }
    if (vd == V) return {};  // a full-size mapping is ignored
    validate_vocab_mapping(m, V, vd, d2t, t2d);
    log::info(cat("vocabulary mapping from ", d2t, " and ", t2d, ": ", vd, " of ", V, " tokens"));
    return m;
  }
  if (!args.has("draft_vocab_size") || args.get_int("draft_vocab_size") == V) return {};
  const auto vd = args.get_int("draft_vocab_size");
  if (vd <= 0 || vd > V) fail_usage(cat("--draft-vocab-size must be in [1, ", V, "], got ", vd));
  TokenFrequencies freq;
  std::string source;
  if (args.has("token_freq_path")) {
    source = args.get_string("token_freq_path");
    freq = read_token_frequencies(source);
  } else {
    source = (fs::path(data_path) / "data.jsonl").string();
    for (const auto& row : read_data_jsonl(source)) {
      count_token_frequencies(torch::tensor(row.input_ids, torch::kInt64), torch::tensor(row.loss_mask, torch::kInt64),
                              freq);
    }
  }
  VocabMapping m = build_vocab_mapping(freq, V, vd);
  log::info(cat("built a ", vd, "-token draft vocabulary from ", source));
  built_from = source;
  return m;
}

// Whether the plugin that registered `algorithm` was built for plugin ABI major.minor or newer (a
// virtual added in a minor version may only be called on such plugins).
bool plugin_abi_at_least(const PluginHost& plugins, const std::string& algorithm, std::uint32_t major,
                         std::uint32_t minor) {
  for (const auto& record : plugins.records()) {
    if (!record.ok) continue;
    if (std::find(record.algorithms.begin(), record.algorithms.end(), algorithm) == record.algorithms.end()) continue;
    return record.abi_major > major || (record.abi_major == major && record.abi_minor >= minor);
  }
  return false;
}

void check_model(DraftModel& model, const std::string& name) {
  // speculators/model.py: SpeculatorModel.verify_training_compatible, in the terms of this SDK.
  if (model.layers().is_empty() || model.layers()->size() == 0) {
    fail(cat("algorithm ", name, ": the model's layers() is empty (the host shards and trains by layer)"),
         ExitCode::kPlugin);
  }
  if (!model.embed_tokens()) fail(cat("algorithm ", name, ": the model has no embed_tokens()"), ExitCode::kPlugin);
  if (!model.lm_head()) fail(cat("algorithm ", name, ": the model has no lm_head()"), ExitCode::kPlugin);
}

void write_run_files(const Args& args, const Schema& schema, const std::vector<std::string>& argv, int world_size) {
  const fs::path save = args.get_string("save_path");
  lock_save_path(save);
  write_file_atomic((save / "run.yaml").string(), job_to_yaml(args, schema));
  std::time_t now = std::time(nullptr);
  char stamp[64];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  std::string text = cat("# Timestamp: ", stamp, "\n# World size: ", world_size, "\n# ", host_version_string(), "\nspeculators-train");
  for (const auto& a : argv) text += " " + shell_quote(a);
  write_file_atomic((save / "train_command.txt").string(), text + "\n");
}

// This process's communicator: local for one process, else the launcher's rank joins the job
// over --dist-backend.
std::unique_ptr<Communicator> join_job(const Args& args, const RankInfo& info, const TrainingDevice& device) {
  if (info.world_size == 1) return make_local_communicator();
  log::set_rank(info.rank, info.world_size);
  if (info.rank != 0 && log::level() < log::Level::kWarn) log::set_level(log::Level::kWarn);  // rank 0 reports
  std::string backend = args.get_string("dist_backend");
  if (backend == "auto") backend = nccl_available() && device.device.is_cuda() ? "nccl" : "gloo";
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.get_double("dist_timeout") * 1000));
  if (timeout.count() <= 0) fail_usage(cat("--dist-timeout must be > 0, got ", args.get_double("dist_timeout")));
  auto comm = make_communicator(backend, info, timeout, device.device.is_cuda() ? device.device.index() : info.local_rank);
  log::info(cat("rank ", info.rank, " of ", info.world_size, " joined (", info.launcher, " launch, ", backend,
                ", rendezvous ", info.master_addr, ":", info.master_port, ")"));
  return comm;
}

// --list-plugins, --describe NAME and --help: answered from the plugins alone, before any job
// is resolved. nullopt when the command line asks for none of them.
std::optional<int> answer_plugin_query(const CommandLine& cmd, PluginHost& plugins,
                                       const std::vector<PluginDir>& search_path,
                                       const std::vector<PluginCandidate>& candidates) {
  if (cmd.list_plugins) {
    plugins.load_all(candidates);
    std::cout << format_plugin_list(plugins.records());
    std::cerr << format_search_path(search_path);
    return 0;
  }
  if (!cmd.describe.empty()) {
    std::cout << describe_algorithm(*plugins.load_for_algorithm(cmd.describe, candidates).algorithm);
    return 0;
  }
  if (cmd.help) {
    const std::string type = peek_speculator_type(cmd);
    Schema schema = host_schema();
    try {
      const auto& entry = plugins.load_for_algorithm(type, candidates);
      schema = merge_schemas(schema, entry.algorithm->schema(), type);
    } catch (const Error& e) {
      log::warn(cat("showing host options only: ", e.what()));
    }
    std::cout << help_text(schema);
    return 0;
  }
  return std::nullopt;
}

// The algorithm the job names, with the merged schema and the resolved options.
struct ResolvedJob {
  std::string type;
  const Algorithm* algorithm = nullptr;
  Schema schema;
  Args args;
};

ResolvedJob resolve_training_job(const CommandLine& cmd, PluginHost& plugins,
                                 const std::vector<PluginCandidate>& candidates) {
  ResolvedJob job;
  job.type = peek_speculator_type(cmd);
  job.algorithm = plugins.load_for_algorithm(job.type, candidates).algorithm.get();
  for (const auto& record : plugins.records()) {
    if (record.status == PluginStatus::kRejected) log::warn(cat("plugin ", record.path, " rejected: ", record.reason));
  }
  job.schema = merge_schemas(host_schema(), job.algorithm->schema(), job.type);
  job.args = resolve_job(cmd, job.schema);
  return job;
}

// What the algorithm's factory needs: the verifier's config (from a local Hugging Face layout
// directory), the vocabulary mapping, the options.
// --data-source auto: files when <data-path>/hidden_states exists, else online.
std::string resolved_data_source(const Args& args) {
  const std::string source = args.get_string("data_source");
  if (source != "auto") return source;
  return fs::exists(fs::path(args.get_string("data_path")) / "hidden_states") ? "files" : "online";
}

// `vocab_built_from` is set when the mapping was built from token frequencies (see resolve_vocab).
BuildContext make_build_context(const Args& args, std::string& vocab_built_from) {
  const std::string verifier_dir = args.get_string("verifier_name_or_path");
  if (!fs::is_directory(verifier_dir)) {
    fail_usage(cat("--verifier-name-or-path ", verifier_dir, ": not a local directory (this host reads a "
                   "Hugging Face layout directory: config.json + model.safetensors)"));
  }
  const std::string data_path = args.get_string("data_path");
  const std::string source = resolved_data_source(args);
  BuildContext ctx;
  ctx.verifier_json = read_verifier_config_json(verifier_dir);
  // Pre-computed features need only the verifier's widths, embedding, final norm and head, so
  // any decoder family loads; the online source runs the verifier and needs a supported one.
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, verifier_dir + "/config.json",
                                                 /*widths_only_ok=*/source == "files");
  ctx.verifier_path = verifier_dir;
  ctx.verifier_name = verifier_dir;
  ctx.vocab = resolve_vocab(args, ctx.verifier, data_path, vocab_built_from);
  ctx.args = args;
  return ctx;
}

// Under --from-pretrained the draft's architecture comes from the checkpoint's config.json, so an
// option of the algorithm's "draft" group given as a flag could not apply: an error, not ignored.
void check_from_pretrained_flags(const CommandLine& cmd, const ResolvedJob& job) {
  const std::string from = job.args.get_string("from_pretrained");
  if (from.empty()) return;
  for (const auto& option : job.algorithm->schema()) {
    if (option.group != "draft") continue;
    const std::string flag = option.flag();
    for (const auto& given : cmd.flags) {
      if (given.first != flag && given.first != "--no-" + flag.substr(2)) continue;
      fail_usage(cat(given.first, " cannot apply with --from-pretrained ", from, ": the draft's architecture ",
                     "(", option.key, ") comes from ", (fs::path(from) / "config.json").string(),
                     "; drop the flag, or train a new draft without --from-pretrained"));
    }
  }
}

// The draft: from --from-pretrained when given, else fresh from the algorithm's factory.
std::shared_ptr<DraftModel> build_draft(const ResolvedJob& job, const BuildContext& ctx) {
  std::shared_ptr<DraftModel> model;
  const std::string from = job.args.get_string("from_pretrained");
  if (!from.empty()) {
    const Json saved = Json::read_file((fs::path(from) / "config.json").string());
    model = call_plugin(job.type, "load", [&] { return load_saved_draft(*job.algorithm, saved, from, ctx, false); });
  } else {
    model = call_plugin(job.type, "build", [&] { return job.algorithm->from_training_args(ctx); });
  }
  if (!model) fail(cat("algorithm ", job.type, ": the factory returned no model"), ExitCode::kPlugin);
  call_plugin(job.type, "build", [&] { check_model(*model, job.type); });
  return model;
}

// The data of one run: the feature source and the loaders of both splits (which refer to it).
struct TrainingData {
  std::unique_ptr<FeatureSource> features;
  std::unique_ptr<Loader> train;
  std::unique_ptr<Loader> val;
};

TrainingData open_training_data(const Args& args, const Algorithm& algorithm, const BuildContext& ctx,
                                const DraftModel& model, const Communicator& comm, const TrainingDevice& device) {
  const std::string data_path = args.get_string("data_path");
  const std::string source = resolved_data_source(args);
  const std::string jsonl = (fs::path(data_path) / "data.jsonl").string();
  auto rows = read_data_jsonl(jsonl);
  const std::size_t rows_count = rows.size();
  check_token_range(rows, ctx.verifier.vocab_size, jsonl);
  auto bad = std::make_shared<BadSampleLog>(parse_bad_sample_policy(args.get_string("on_bad_sample")));
  auto [train_idx, val_idx] = split_rows(rows.size(), args.get_double("train_data_ratio"));
  train_idx = keep_supervised_rows(rows, train_idx, *bad, jsonl);
  val_idx = keep_supervised_rows(rows, val_idx, *bad, jsonl);
  const auto total_len = args.get_int("total_seq_len");
  TrainingData data;
  if (source == "files") {
    data.features = std::make_unique<FileFeatureSource>(data_path, std::move(rows),
                                                        static_cast<std::int64_t>(model.target_layer_ids().size()),
                                                        ctx.verifier.hidden_size, bad);
  } else {
    VerifierModel verifier = load_verifier(ctx.verifier_path);
    verifier->to(device.device, device.hidden_states_dtype);  // features come back to host memory
    data.features = std::make_unique<OnlineFeatureSource>(
        verifier, std::move(rows), model.target_layer_ids(),
        static_cast<std::size_t>(args.get_int("feature_cache_mb")) << 20, total_len, total_len + 1);
  }
  const auto seed = static_cast<std::uint64_t>(args.get_int("seed"));
  LoaderOptions options;
  options.num_workers = static_cast<int>(args.get_int("num_workers"));
  options.prefetch_factor = static_cast<int>(args.get_int("prefetch_factor"));
  options.rank = comm.rank();
  options.world_size = comm.world_size();
  options.pin_memory = device.device.is_cuda();
  data.train = std::make_unique<Loader>(*data.features, algorithm, train_idx, total_len, args.get_double("noise_std"),
                                        seed, true, options);
  data.val = std::make_unique<Loader>(*data.features, algorithm, val_idx, total_len, 0.0, seed, false, options);
  require_training_batches(*data.train, jsonl, rows_count, train_idx.size(), args.get_double("train_data_ratio"),
                           comm.world_size());
  log::info(cat("data: ", train_idx.size(), " train rows, ", val_idx.size(), " validation rows, ",
                data.train->num_batches(), " packed rows of ", total_len, " tokens per epoch",
                comm.world_size() > 1 ? " per rank" : "", " (", source, " source, ", options.num_workers,
                " workers)"));
  return data;
}

int train(const CommandLine& cmd, const std::vector<std::string>& argv) {
  Registry registry;
  PluginHost plugins(registry);
  const auto search_path = plugin_search_path(plugin_search_inputs(cmd.plugin_dirs));
  const auto candidates = discover_plugins(search_path);
  if (auto answered = answer_plugin_query(cmd, plugins, search_path, candidates)) return *answered;

  ResolvedJob job = resolve_training_job(cmd, plugins, candidates);
  const Args& args = job.args;
  if (cmd.dump_config) {
    std::cout << job_to_yaml(args, job.schema);
    return 0;
  }
  if (!args.has("verifier_name_or_path")) {
    fail_usage("--verifier-name-or-path is required (flag, or verifier.verifier_name_or_path in the job file)");
  }
  check_from_pretrained_flags(cmd, job);
  call_plugin(job.type, "validate", [&] { job.algorithm->validate(args); });
  const RankInfo rank_info = rank_info_from_environment();
  // Checked before any rank starts: a CUDA device without CUDA is a usage error.
  const TrainingDevice device = resolve_training_device(args, rank_info.local_rank);
  if (rank_info.launcher == "none" && args.get_int("nproc_per_node") != 1) {
    return launch_local_ranks(static_cast<int>(args.get_int("nproc_per_node")), argv,
                              args.get_double("dist_timeout") + 30.0);
  }

  std::unique_ptr<Communicator> comm = join_job(args, rank_info, device);
  const bool main_rank = comm->rank() == 0;
  apply_num_threads(static_cast<int>(args.get_int("num_threads")));
  torch::manual_seed(static_cast<std::uint64_t>(args.get_int("seed")));
  std::string vocab_built_from;
  const BuildContext ctx = make_build_context(args, vocab_built_from);
  std::shared_ptr<DraftModel> model = build_draft(job, ctx);
  model->to(device.device);  // fp32 master weights; bf16 only inside autocast
  // The job is accepted: only now does anything land on disk, and only in the save path.
  if (main_rank) {
    write_run_files(args, job.schema, argv, comm->world_size());
    if (!vocab_built_from.empty()) {
      save_vocab_mapping(ctx.vocab, args.get_string("save_path"));
      log::info(cat("wrote the draft vocabulary built from ", vocab_built_from, " to ", args.get_string("save_path"),
                    "/{d2t,t2d}.npy"));
    }
  }

  if (args.get_bool("dry_run")) {
    if (!main_rank) return 0;
    call_plugin(job.type, "save", [&] { save_draft(*model, args.get_string("save_path")); });
    log::info(cat("dry run: wrote the initialised checkpoint to ", args.get_string("save_path")));
    return 0;
  }
  TrainingData data = open_training_data(args, *job.algorithm, ctx, *model, *comm, device);
  Trainer trainer(args, *job.algorithm, model, *data.train, data.val.get(), *comm, device,
                  plugin_abi_at_least(plugins, job.type, 2, 1));
  const auto summary = trainer.run();
  log::info(cat("done: ", summary.global_step, " steps; last checkpoint ", summary.last_checkpoint));
  return 0;
}

}  // namespace

int run_train_command(const std::vector<std::string>& argv) {
  try {
    CommandLine cmd = parse_command_line(argv);
    if (cmd.version) {
      std::cout << host_version_string() << "\n";
      return 0;
    }
    return train(cmd, argv);
  } catch (const Error& e) {
    log::error(e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    log::error(cat("LibTorch: ", e.what_without_backtrace()));
    return static_cast<int>(ExitCode::kFailure);
  } catch (const std::exception& e) {
    log::error(e.what());
    return static_cast<int>(ExitCode::kFailure);
  }
}

}  // namespace speculators
