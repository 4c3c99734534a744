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
#include "observe/allocator.h"
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
#include "train/train_options.h"
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

// speculators/train/cli.py: parse_vocab_mappings: explicit paths; then <data-path>/{d2t,t2d}.npy
// (files the user put there) or, with --draft-vocab-size N, the reference's cached
// <data-path>/{d2t,t2d}-N.npy; then, with --draft-vocab-size, built from token frequencies
// (--token-freq-path, else <data-path>/token_freq.pt as the reference reads it, else
// <data-path>/token_freq.npy as this project's datagen commands write it). Without any of them the
// reference's rule holds: a warning, and the verifier's full vocabulary. Nothing is written here: a
// mapping built from frequencies (`built_from` names its source) is written into the save path only
// once the job was accepted (see train), so a rejected job leaves no file behind and the data
// directory is never changed.
VocabMapping resolve_vocab(const VocabOptions& options, const TransformerConfig& verifier, const std::string& data_path,
                           std::string& built_from) {
  const auto V = verifier.vocab_size;
  std::string d2t = options.d2t_path.value_or("");
  std::string t2d = options.t2d_path.value_or("");
  for (const auto& [flag, path] : {std::pair{"--d2t-path", d2t}, std::pair{"--t2d-path", t2d},
                                   std::pair{"--token-freq-path", options.token_freq_path.value_or("")}}) {
    std::error_code ec;
    if (!path.empty() && !fs::exists(path, ec)) fail_usage(cat(flag, " ", path, ": no such file"));
  }
  if (d2t.empty() && t2d.empty()) {
    std::vector<std::string> suffixes = {""};
    if (options.draft_vocab_size) suffixes.push_back(cat("-", *options.draft_vocab_size));
    for (const auto& suffix : suffixes) {
      auto dd = fs::path(data_path) / ("d2t" + suffix + ".npy"), tt = fs::path(data_path) / ("t2d" + suffix + ".npy");
      if (fs::exists(dd) && fs::exists(tt)) {
        d2t = dd.string(), t2d = tt.string();
        break;
      }
    }
  }
  if (!d2t.empty() || !t2d.empty()) {
    VocabMapping m = load_vocab_mapping(d2t, t2d);
    const auto vd = m.d2t.size(0);
    if (options.draft_vocab_size && *options.draft_vocab_size != vd) {
      fail_usage(cat("--draft-vocab-size ", *options.draft_vocab_size, " disagrees with ", d2t, " (", vd,
                     " entries)"));
    }
    if (vd == V) return {};  // a full-size mapping is ignored
    validate_vocab_mapping(m, V, vd, d2t, t2d);
    log::info(cat("vocabulary mapping from ", d2t, " and ", t2d, ": ", vd, " of ", V, " tokens"));
    return m;
  }
  if (!options.draft_vocab_size || *options.draft_vocab_size == V) return {};
  const auto vd = *options.draft_vocab_size;
  if (vd <= 0 || vd > V) fail_usage(cat("--draft-vocab-size must be in [1, ", V, "], got ", vd));
  std::string source = options.token_freq_path.value_or("");
  if (source.empty()) {
    for (const char* name : {"token_freq.pt", "token_freq.npy"}) {
      if (fs::exists(fs::path(data_path) / name)) {
        source = (fs::path(data_path) / name).string();
        break;
      }
    }
  }
  if (source.empty()) {
    log::warn(cat("--draft-vocab-size ", vd, ": no vocabulary mapping and no token frequencies to build one from (",
                  data_path, "/token_freq.pt or token_freq.npy, or --token-freq-path); training with the verifier's "
                  "full vocabulary of ", V, " tokens"));
    return {};
  }
  VocabMapping m = build_vocab_mapping(read_token_frequencies(source), V, vd);
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
    const HostFingerprint& f = record.fingerprint;
    return f.abi_major > major || (f.abi_major == major && f.abi_minor >= minor);
  }
  return false;
}

void write_run_files(const TrainOptions& options, const Schema& schema, const std::vector<std::string>& argv,
                     int world_size) {
  const fs::path save = options.checkpoint.save_path;
  lock_save_path(save);
  write_file_atomic((save / "run.yaml").string(), job_to_yaml(options.job, schema));
  std::time_t now = std::time(nullptr);
  char stamp[64];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  std::string text = cat("# Timestamp: ", stamp, "\n# World size: ", world_size, "\n# ", host_version_string(), "\nspeculators-train");
  for (const auto& a : argv) text += " " + shell_quote(a);
  write_file_atomic((save / "train_command.txt").string(), text + "\n");
}

// This process's communicator: local for one process, else the launcher's rank joins the job
// over --dist-backend.
std::unique_ptr<Communicator> join_job(const DistributedOptions& options, const RankInfo& info,
                                       const TrainingDevice& device) {
  // One process needs no collective backend, unless one was asked for by name (a one-rank Gloo or
  // NCCL group runs the same collectives as a larger job: how one GPU checks the NCCL path).
  if (info.world_size == 1 && options.dist_backend == "auto") return make_local_communicator();
  log::set_rank(info.rank, info.world_size);
  if (info.rank != 0 && log::level() < log::Level::kWarn) log::set_level(log::Level::kWarn);  // rank 0 reports
  std::string backend = options.dist_backend;
  if (backend == "auto") backend = nccl_available() && device.device.is_cuda() ? "nccl" : "gloo";
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(options.dist_timeout * 1000));
  if (timeout.count() <= 0) fail_usage(cat("--dist-timeout must be > 0, got ", options.dist_timeout));
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
  TrainOptions options;  // options.job: the resolved job
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
  job.options = TrainOptions::from_args(resolve_job(cmd, job.schema));
  return job;
}

// What the algorithm's factory needs: the verifier's config (from a local Hugging Face layout
// directory), the vocabulary mapping, the options.
// --data-source auto: files when <data-path>/hidden_states exists, else online.
std::string resolved_data_source(const DataOptions& options) {
  if (options.data_source != "auto") return options.data_source;
  return fs::exists(fs::path(options.data_path) / "hidden_states") ? "files" : "online";
}

// `vocab_built_from` is set when the mapping was built from token frequencies (see resolve_vocab).
BuildContext make_build_context(const TrainOptions& options, std::string& vocab_built_from) {
  const std::string verifier_dir = options.verifier_name_or_path.value_or("");
  if (!fs::is_directory(verifier_dir)) {
    fail_usage(cat("--verifier-name-or-path ", verifier_dir, ": not a local directory (this host reads a "
                   "Hugging Face layout directory: config.json + model.safetensors)"));
  }
  const std::string& data_path = options.data.data_path;
  if (!fs::is_directory(data_path)) {
    fail_usage(cat("--data-path ", data_path, ": not a directory (expected one holding data.jsonl, as "
                   "speculators-datagen prepare or sample writes)"));
  }
  const std::string source = resolved_data_source(options.data);
  BuildContext ctx;
  ctx.verifier_json = read_verifier_config_json(verifier_dir);
  // Pre-computed features need only the verifier's widths, embedding, final norm and head, so
  // any decoder family loads; the online source runs the verifier and needs a supported one.
  ctx.verifier = TransformerConfig::from_hf_json(ctx.verifier_json, verifier_dir + "/config.json",
                                                 /*widths_only_ok=*/source == "files");
  ctx.verifier_path = verifier_dir;
  ctx.verifier_name = verifier_dir;
  ctx.vocab = resolve_vocab(options.vocab, ctx.verifier, data_path, vocab_built_from);
  ctx.args = options.job;
  // --draft-vocab-size without a mapping or frequencies fell back to the full vocabulary (see
  // resolve_vocab): the draft is built for that vocabulary, as the reference does.
  if (options.vocab.draft_vocab_size && ctx.vocab.empty()) {
    ctx.args.set("draft_vocab_size", Json(static_cast<long long>(ctx.verifier.vocab_size)));
  }
  return ctx;
}

// Under --from-pretrained the draft's architecture comes from the checkpoint's config.json, so an
// option of the algorithm's "draft" group given as a flag could not apply: an error, not ignored.
void check_from_pretrained_flags(const CommandLine& cmd, const ResolvedJob& job) {
  const std::string& from = job.options.from_pretrained;
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
  const std::string& from = job.options.from_pretrained;
  if (!from.empty()) {
    const Json saved = read_draft_config_json(from, "--from-pretrained");
    model = call_plugin(job.type, "load", [&] { return load_saved_draft(*job.algorithm, saved, from, ctx, false); });
  } else {
    try {
      model = call_plugin(job.type, "build", [&] { return job.algorithm->from_training_args(ctx); });
    } catch (const Error& e) {
      // The draft's widths come from the verifier's config: name what sized the allocation.
      if (std::string(e.what()).find(kOutOfMemory) == std::string::npos) throw;
      fail(cat(e.what(), "; the draft takes its widths from ", (fs::path(ctx.verifier_path) / "config.json").string(),
               ": hidden_size ", ctx.verifier.hidden_size, ", intermediate_size ", ctx.verifier.intermediate_size,
               ", vocab_size ", ctx.verifier.vocab_size),
           ExitCode::kFailure);
    }
  }
  if (!model) fail(cat("algorithm ", job.type, ": the factory returned no model"), ExitCode::kPlugin);
  call_plugin(job.type, "build", [&] { check_draft_model(*model, job.type); });
  return model;
}

// The data of one run: the feature source and the loaders of both splits (which refer to it).
struct TrainingData {
  std::unique_ptr<FeatureSource> features;
  std::unique_ptr<Loader> train;
  std::unique_ptr<Loader> val;
};

TrainingData open_training_data(const TrainOptions& options, const Algorithm& algorithm, const BuildContext& ctx,
                                const DraftModel& model, const Communicator& comm, const TrainingDevice& device) {
  const DataOptions& opt = options.data;
  const std::string& data_path = opt.data_path;
  const std::string source = resolved_data_source(opt);
  const std::string jsonl = (fs::path(data_path) / "data.jsonl").string();
  auto rows = read_data_jsonl(jsonl);
  const std::size_t rows_count = rows.size();
  check_token_range(rows, ctx.verifier.vocab_size, jsonl);
  auto bad = std::make_shared<BadSampleLog>(parse_bad_sample_policy(opt.on_bad_sample));
  auto [train_idx, val_idx] = split_rows(rows.size(), opt.train_data_ratio);
  train_idx = keep_supervised_rows(rows, train_idx, *bad, jsonl);
  val_idx = keep_supervised_rows(rows, val_idx, *bad, jsonl);
  const auto total_len = opt.total_seq_len;
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
        static_cast<std::size_t>(opt.feature_cache_mb) << 20, total_len, total_len + 1);
  }
  const auto seed = static_cast<std::uint64_t>(options.seed);
  LoaderOptions loading;
  loading.num_workers = opt.num_workers;
  loading.prefetch_factor = opt.prefetch_factor;
  loading.rank = comm.rank();
  loading.world_size = comm.world_size();
  loading.pin_memory = device.device.is_cuda();
  data.train = std::make_unique<Loader>(*data.features, algorithm, train_idx, total_len, opt.noise_std, seed, true,
                                        loading);
  data.val = std::make_unique<Loader>(*data.features, algorithm, val_idx, total_len, 0.0, seed, false, loading);
  require_training_batches(*data.train, jsonl, rows_count, train_idx.size(), opt.train_data_ratio,
                           comm.world_size());
  log::info(cat("data: ", train_idx.size(), " train rows, ", val_idx.size(), " validation rows, ",
                data.train->num_batches(), " packed rows of ", total_len, " tokens per epoch",
                comm.world_size() > 1 ? " per rank" : "", " (", source, " source, ", loading.num_workers,
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
  const TrainOptions& options = job.options;
  if (cmd.dump_config) {
    std::cout << job_to_yaml(options.job, job.schema);
    return 0;
  }
  if (!options.verifier_name_or_path) {
    fail_usage("--verifier-name-or-path is required (flag, or verifier.verifier_name_or_path in the job file)");
  }
  check_from_pretrained_flags(cmd, job);
  call_plugin(job.type, "validate", [&] { job.algorithm->validate(options.job); });
  const RankInfo rank_info = rank_info_from_environment();
  // Checked before any rank starts: a CUDA device without CUDA is a usage error.
  const TrainingDevice device = resolve_training_device(options.device, rank_info.local_rank);
  const bool named_backend = options.distributed.dist_backend != "auto";
  if (rank_info.launcher == "none" && (options.distributed.nproc_per_node != 1 || named_backend)) {
    return launch_local_ranks(options.distributed.nproc_per_node, argv, options.distributed.dist_timeout + 30.0);
  }

  std::unique_ptr<Communicator> comm = join_job(options.distributed, rank_info, device);
  const bool main_rank = comm->rank() == 0;
  apply_num_threads(options.device.num_threads);
  log::info(cat("allocator: ", keep_large_allocations_on_heap()));
  torch::manual_seed(static_cast<std::uint64_t>(options.seed));
  std::string vocab_built_from;
  const BuildContext ctx = make_build_context(options, vocab_built_from);
  std::shared_ptr<DraftModel> model = build_draft(job, ctx);
  model->to(device.device);  // fp32 master weights; bf16 only inside autocast
  // The job is accepted: only now does anything land on disk, and only in the save path.
  if (main_rank) {
    write_run_files(options, job.schema, argv, comm->world_size());
    if (!vocab_built_from.empty()) {
      save_vocab_mapping(ctx.vocab, options.checkpoint.save_path);
      log::info(cat("wrote the draft vocabulary built from ", vocab_built_from, " to ", options.checkpoint.save_path,
                    "/{d2t,t2d}.npy"));
    }
  }

  if (options.dry_run) {
    if (!main_rank) return 0;
    call_plugin(job.type, "save", [&] { save_draft(*model, options.checkpoint.save_path); });
    log::info(cat("dry run: wrote the initialised checkpoint to ", options.checkpoint.save_path));
    return 0;
  }
  TrainingData data = open_training_data(options, *job.algorithm, ctx, *model, *comm, device);
  Trainer trainer(options, *job.algorithm, model, *data.train, data.val.get(), *comm, device,
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
