// The typed options of a training job: one struct per stage (vocabulary, data, optimizer,
// schedule, loop, checkpoints, device, ranks, logging), all filled from the resolved job in one
// place, TrainOptions::from_args. Names, defaults, ranges and help text live in the host's schema
// (tools/job.h: host_schema); these structs only give the code typed fields to read, so a setting
// can be followed from the job to where it acts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "observe/run_log.h"  // LogOptions
#include "speculators/args.h"

namespace speculators {

// Where the draft vocabulary comes from (train_command.cpp: resolve_vocab).
struct VocabOptions {
  std::optional<std::string> d2t_path, t2d_path, token_freq_path;
  std::optional<std::int64_t> draft_vocab_size;  // unset: the verifier's vocabulary
};

// The rows, the feature source and the loaders.
struct DataOptions {
  std::string data_path;
  std::string data_source;  // auto | online | files
  std::int64_t total_seq_len = 0;
  double train_data_ratio = 0;
  double noise_std = 0;
  std::int64_t feature_cache_mb = 0;
  std::string on_bad_sample;  // skip | raise
  int num_workers = 0;
  int prefetch_factor = 0;
};

// optim.h: OptimizerSet, and the step's gradient handling.
struct OptimizerOptions {
  std::string optimizer;  // muon | adamw
  double lr = 0;
  double weight_decay = 0;
  std::optional<double> muon_lr;  // unset: 10 x lr
  double muon_momentum = 0;
  double muon_weight_decay = 0;
  int muon_ns_steps = 0;
  std::string muon_adjust_lr_fn;
  double max_grad_norm = 0;
  std::int64_t grad_accum_steps = 1;
};

// optim.h: make_schedule.
struct SchedulerOptions {
  std::string type;  // linear | cosine | none
  std::optional<std::int64_t> warmup_steps;
  std::optional<double> warmup_ratio;
  std::optional<std::int64_t> total_steps;
  double num_cosine_cycles = 0;
};

// How long the loop runs and when it gives up.
struct LoopOptions {
  std::int64_t epochs = 0;
  std::optional<std::int64_t> max_steps;
  std::int64_t max_bad_steps = 0;
  std::int64_t log_freq = 1;
};

// trainer_checkpoint.cpp: what is saved, when, and whether a run resumes.
struct CheckpointOptions {
  std::string save_path;
  double checkpoint_freq = 0;
  std::int64_t save_steps = 0;
  bool save_best = false;
  std::int64_t keep_last = 0;
  bool resume_from_checkpoint = false;
};

// device.h: where and in which precision the run trains.
struct DeviceOptions {
  std::string device;                             // auto | cpu | cuda | cuda:N
  std::optional<std::string> precision;           // bf16 | fp32; unset: by device
  std::optional<std::string> hidden_states_dtype;  // bfloat16 | float32; unset: by precision
  int num_threads = 0;
};

// launcher.h and distributed.h: the ranks of the job.
struct DistributedOptions {
  int nproc_per_node = 1;
  std::string shard;         // none | optimizer | full
  std::string dist_backend;  // auto | gloo | nccl
  double dist_timeout = 0;   // seconds
};

struct TrainOptions {
  // The whole resolved job: the algorithm reads its own options from it (Algorithm::validate,
  // trainer_kwargs, BuildContext::args), and each checkpoint records it.
  Args job;
  std::string speculator_type;
  std::int64_t seed = 0;
  bool dry_run = false;
  std::optional<std::string> verifier_name_or_path;
  std::string from_pretrained;  // "" = a fresh draft
  VocabOptions vocab;
  DataOptions data;
  OptimizerOptions optimizer;
  SchedulerOptions scheduler;
  LoopOptions loop;
  CheckpointOptions checkpoint;
  DeviceOptions device;
  DistributedOptions distributed;
  LogOptions log;

  // Reads every host option of a resolved job (one that holds every key of host_schema()); a
  // missing key is an error naming it.
  static TrainOptions from_args(const Args& args);
};

}  // namespace speculators
