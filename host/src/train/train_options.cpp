// TrainOptions::from_args: the one place the host reads its options out of the resolved job.
#include "train/train_options.h"

namespace speculators {

namespace {

int get_int32(const Args& args, const char* key) { return static_cast<int>(args.get_int(key)); }

VocabOptions vocab_options(const Args& args) {
  VocabOptions o;
  o.d2t_path = args.get_optional_string("d2t_path");
  o.t2d_path = args.get_optional_string("t2d_path");
  o.token_freq_path = args.get_optional_string("token_freq_path");
  o.draft_vocab_size = args.get_optional_int("draft_vocab_size");
  return o;
}

DataOptions data_options(const Args& args) {
  DataOptions o;
  o.data_path = args.get_string("data_path");
  o.data_source = args.get_string("data_source");
  o.total_seq_len = args.get_int("total_seq_len");
  o.train_data_ratio = args.get_double("train_data_ratio");
  o.noise_std = args.get_double("noise_std");
  o.feature_cache_mb = args.get_int("feature_cache_mb");
  o.on_bad_sample = args.get_string("on_bad_sample");
  o.num_workers = get_int32(args, "num_workers");
  o.prefetch_factor = get_int32(args, "prefetch_factor");
  return o;
}

OptimizerOptions optimizer_options(const Args& args) {
  OptimizerOptions o;
  o.optimizer = args.get_string("optimizer");
  o.lr = args.get_double("lr");
  o.weight_decay = args.get_double("weight_decay");
  o.muon_lr = args.get_optional_double("muon_lr");
  o.muon_momentum = args.get_double("muon_momentum");
  o.muon_weight_decay = args.get_double("muon_weight_decay");
  o.muon_ns_steps = get_int32(args, "muon_ns_steps");
  o.muon_adjust_lr_fn = args.get_string("muon_adjust_lr_fn");
  o.max_grad_norm = args.get_double("max_grad_norm");
  o.grad_accum_steps = args.get_int("grad_accum_steps");
  return o;
}

SchedulerOptions scheduler_options(const Args& args) {
  SchedulerOptions o;
  o.type = args.get_string("scheduler_type");
  o.warmup_steps = args.get_optional_int("scheduler_warmup_steps");
  o.warmup_ratio = args.get_optional_double("scheduler_warmup_ratio");
  o.total_steps = args.get_optional_int("scheduler_total_steps");
  o.num_cosine_cycles = args.get_double("scheduler_num_cosine_cycles");
  return o;
}

LoopOptions loop_options(const Args& args) {
  LoopOptions o;
  o.epochs = args.get_int("epochs");
  o.max_steps = args.get_optional_int("max_steps");
  o.max_bad_steps = args.get_int("max_bad_steps");
  o.log_freq = args.get_int("log_freq");
  return o;
}

CheckpointOptions checkpoint_options(const Args& args) {
  CheckpointOptions o;
  o.save_path = args.get_string("save_path");
  o.checkpoint_freq = args.get_double("checkpoint_freq");
  o.save_steps = args.get_int("save_steps");
  o.save_best = args.get_bool("save_best");
  o.keep_last = args.get_int("keep_last");
  o.resume_from_checkpoint = args.get_bool("resume_from_checkpoint");
  return o;
}

DeviceOptions device_options(const Args& args) {
  DeviceOptions o;
  o.device = args.get_optional_string("device").value_or("auto");
  o.precision = args.get_optional_string("precision");
  o.hidden_states_dtype = args.get_optional_string("hidden_states_dtype");
  o.num_threads = get_int32(args, "num_threads");
  return o;
}

DistributedOptions distributed_options(const Args& args) {
  DistributedOptions o;
  o.nproc_per_node = get_int32(args, "nproc_per_node");
  o.shard = args.get_string("shard");
  o.dist_backend = args.get_string("dist_backend");
  o.dist_timeout = args.get_double("dist_timeout");
  return o;
}

LogOptions log_options(const Args& args) {
  LogOptions o;
  o.dir = args.get_optional_string("log_dir").value_or(args.get_string("save_path"));
  o.logger = args.get_string("logger");
  o.run_name = args.get_optional_string("run_name").value_or("tensorboard");
  return o;
}

}  // namespace

TrainOptions TrainOptions::from_args(const Args& args) {
  TrainOptions o;
  o.job = args;
  o.speculator_type = args.get_string("speculator_type");
  o.seed = args.get_int("seed");
  o.dry_run = args.get_bool("dry_run");
  o.verifier_name_or_path = args.get_optional_string("verifier_name_or_path");
  o.from_pretrained = args.get_string("from_pretrained");
  o.vocab = vocab_options(args);
  o.data = data_options(args);
  o.optimizer = optimizer_options(args);
  o.scheduler = scheduler_options(args);
  o.loop = loop_options(args);
  o.checkpoint = checkpoint_options(args);
  o.device = device_options(args);
  o.distributed = distributed_options(args);
  o.log = log_options(args);
  return o;
}

}  // namespace speculators
