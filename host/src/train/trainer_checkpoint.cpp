// What the trainer puts into a checkpoint, when it saves, and how it resumes (docs/training.md; the
// reference's speculators/train/checkpointer.py, train_state.h). A resume restores fp32 weights,
// optimizer slots, the schedule position, the data cursor, the RNG state and the best validation
// loss, so the continued run computes the same numbers as one that was never stopped.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <mutex>
#include <set>

#include "speculators/checkpoint.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "plugin_host/plugin_call.h"
#include "plugin_host/sha256.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

constexpr std::int64_t kStateFormat = 2;  // 2: with "checksums"
// The files whose sha256 trainer_state.json records, checked before a resume reads them.
const char* const kChecksummedFiles[] = {"model.safetensors", "optimizer_state.safetensors"};

// A checkpoint a resume can trust, or an Error(kData) naming the file and what is wrong with it:
// the format, each counter's range, each file's sha256 against the one recorded at save time, and
// every floating value of the fp32 state finite. Returns the parsed trainer_state.json.
Json verify_checkpoint(const fs::path& dir) {
  const std::string state_path = (dir / "trainer_state.json").string();
  Json state;
  try {
    state = Json::read_file(state_path);
    if (state.get("format", Json()) != Json(kStateFormat)) {
      fail_data(cat(state_path, ": unknown trainer state format ", state.get("format", Json()).dump(), " (expected ",
                    kStateFormat, ")"));
    }
    for (const char* key : {"epoch", "local_step", "data_cursor", "global_step", "skipped_steps", "bad_streak",
                            "metrics_bytes"}) {
      if (state.at(key).as_int() < 0) fail_data(cat(state_path, ": \"", key, "\" is ", state.at(key).as_int(), ", must be >= 0"));
    }
    for (const char* key : {"batches_per_epoch", "world_size"}) {
      if (state.at(key).as_int() < 1) fail_data(cat(state_path, ": \"", key, "\" is ", state.at(key).as_int(), ", must be >= 1"));
    }
    for (const char* name : kChecksummedFiles) {
      const std::string expected = state.at("checksums").at(name).as_string();
      const std::string actual = sha256_file_hex((dir / name).string(), ExitCode::kData);
      if (actual != expected) {
        fail_data(cat((dir / name).string(), ": sha256 ", actual, " differs from the ", expected,
                      " recorded when it was saved (the file changed or is damaged)"));
      }
    }
  } catch (const Error& e) {
    if (e.code() == ExitCode::kData) throw;
    fail_data(e.what());  // a missing key or wrong type in trainer_state.json is bad data too
  }
  const std::string tensor_path = (dir / "optimizer_state.safetensors").string();
  for (const auto& [name, t] : load_safetensors(tensor_path)) {
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) {
      fail_data(cat(tensor_path, ": tensor \"", name, "\" holds non-finite values"));
    }
  }
  return state;
}
std::string rng_key(int rank) { return cat("rng/cpu/rank", rank); }

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().clone();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Options whose change makes a resumed run differ from the one it continues.
const std::vector<std::string>& trajectory_keys() {
  static const std::vector<std::string> keys = {
      "seed", "speculator_type", "total_seq_len", "train_data_ratio", "noise_std", "optimizer", "lr",
      "weight_decay", "muon_lr", "muon_momentum", "muon_weight_decay", "muon_ns_steps", "scheduler_type", "scheduler_warmup_steps", "scheduler_total_steps", "max_grad_norm"};
  return keys;
}

}  // namespace

bool Trainer::epoch_end_save_due(std::int64_t epoch) const {
  // --checkpoint-freq; unlike the reference (Trainer.maybe_save_checkpoint) the last epoch is
  // always saved.
  const double f = options_.checkpoint.checkpoint_freq;
  const bool last = epoch == options_.loop.epochs - 1 ||
                    (options_.loop.max_steps && global_step_ >= *options_.loop.max_steps);
  if (f < 1) return true;
  const auto every = std::max<std::int64_t>(1, std::llround(f));
  return epoch == 0 || (epoch + 1) % every == 0 || last;
}

bool Trainer::mid_epoch_save_due(std::int64_t steps_done_in_epoch) const {
  if (options_.checkpoint.save_best) return false;  // no periodic saves with --save-best
  const auto save_steps = options_.checkpoint.save_steps;
  if (save_steps > 0) return global_step_ % save_steps == 0;
  const double f = options_.checkpoint.checkpoint_freq;
  if (f >= 1) return false;
  // Trainer.maybe_save_checkpoint: every round(steps_per_epoch * f) steps, unless under 25% of an
  // interval remains.
  const auto interval = std::max<std::int64_t>(1, std::llround(static_cast<double>(steps_per_epoch()) * f));
  const auto remaining = steps_per_epoch() - steps_done_in_epoch;
  return steps_done_in_epoch % interval == 0 && static_cast<double>(remaining) >= 0.25 * interval;
}

void Trainer::save_checkpoint(std::int64_t epoch, std::int64_t local_step,
                              const std::map<std::string, double>* best_val) {
  // Saved whole by rank 0 (as SingleGPUCheckpointer.save_checkpoint) in the single-process layout, so any world size
  // resumes it: sharded optimizer state and parameters are gathered first, with every rank's RNG state.
  dp_->gather_parameters();
  // A checkpoint is only ever written from finite weights: a resume, vLLM, or "the last good
  // state" would otherwise be NaN. Every rank holds the same gathered weights, so all agree.
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    if (!torch::isfinite(item.value()).all().item<bool>()) {
      fail(cat("not saving a checkpoint at step ", global_step_, ": the weight \"", item.key(),
               "\" is not finite (a step this large diverged: lower --lr or set --max-grad-norm). ",
               summary_.last_checkpoint.empty() ? std::string("No checkpoint was written before.")
                                                : cat("The last checkpoint, with finite weights, is ",
                                                      summary_.last_checkpoint, ".")));
    }
  }
  // Unsharded, rank 0 holds all of it; a sharded rank contributes the units it owns.
  NamedTensors local = dp_->mode() == ShardMode::kNone && !main_rank() ? NamedTensors{} : optim_->state();
  local[rng_key(dp_->rank())] = cpu_rng_state();
  NamedTensors state = dp_->gather_to_rank0(local);
  if (main_rank()) {
    const fs::path dir = store_.write(
        epoch, local_step, [&](const fs::path& tmp) { fill_checkpoint(tmp, epoch, local_step, best_val, state); });
    summary_.last_checkpoint = dir.string();
    log::info(cat("saved checkpoint ", dir.string(), local_step == 0 ? " (epoch end)" : cat(" (step ", local_step, ")")));
  } else {
    summary_.last_checkpoint = (store_.root() / std::to_string(epoch)).string();
  }
  if (dp_->distributed()) dp_->barrier();
}

void Trainer::fill_checkpoint(const fs::path& dir, std::int64_t epoch, std::int64_t local_step,
                              const std::map<std::string, double>* best_val, const NamedTensors& state_tensors) {
  call_plugin(algorithm_.name(), "save", [&] { save_draft(*model_, dir.string()); });
  write_file_atomic((dir / "training_state.json").string(),
                    Json::object({{"epoch", epoch}, {"local_step", local_step}, {"global_step", global_step_}})
                        .dump_python());
  // Exact state: every saved weight in fp32 (model.safetensors holds bf16 for vLLM), optimizer
  // slots in fp32 (not bf16 as the reference's checkpointer.py: convert_float_dtype) and the RNG
  // state.
  NamedTensors tensors = state_tensors;
  for (const auto& [name, t] : draft_state_for_save(*model_, torch::kFloat32)) tensors["model/" + name] = t;
  save_safetensors((dir / "optimizer_state.safetensors").string(), tensors);
  if (schedule_.type != "none") {
    write_file_atomic((dir / "scheduler_state.json").string(),
                      Json::object({{"type", schedule_.type},
                                    {"last_step", global_step_},
                                    {"total_steps", schedule_.total_steps},
                                    {"warmup_steps", schedule_.warmup_steps},
                                    {"num_cosine_cycles", schedule_.cosine_cycles},
                                    {"lr_factor", schedule_.factor(global_step_)}})
                          .dump_python());
  }
  Json state = Json::object({{"format", kStateFormat},
                             {"epoch", epoch},
                             {"local_step", local_step},
                             {"data_cursor", static_cast<std::int64_t>(train_.position())},
                             {"batches_per_epoch", static_cast<std::int64_t>(train_.num_batches())},
                             {"global_step", global_step_},
                             {"skipped_steps", skipped_steps_},
                             {"bad_streak", bad_streak_},
                             {"metrics_bytes", static_cast<std::int64_t>(log_->metrics_bytes())},
                             {"world_size", dp_->world_size()},
                             {"shard", to_string(dp_->mode())},
                             {"job", options_.job.json()}});
  state["best_val_loss"] = best_val_loss_ ? Json(*best_val_loss_) : Json();
  state["best_epoch"] = best_epoch_ ? Json(*best_epoch_) : Json();
  Json checksums = Json::object();
  for (const char* name : kChecksummedFiles) checksums[name] = sha256_file_hex((dir / name).string(), ExitCode::kFailure);
  state["checksums"] = checksums;
  write_file_atomic((dir / "trainer_state.json").string(), state.dump_python());
  for (const char* name : {"run.yaml", "train_command.txt"}) {
    const fs::path src = store_.root() / name;
    std::error_code ec;
    if (fs::exists(src)) fs::copy_file(src, dir / name, fs::copy_options::overwrite_existing, ec);
  }
  for (const auto& item : model_->named_buffers(/*recurse=*/true)) {
    if (item.key() == "d2t" || item.key() == "t2d") save_npy((dir / (item.key() + ".npy")).string(), item.value());
  }
  if (best_val != nullptr) {
    Json metrics = Json::object();
    for (const auto& [k, v] : *best_val) metrics[k + "_epoch"] = v;
    write_file_atomic((dir / "val_metrics.json").string(), metrics.dump_python());
  }
}

void Trainer::restore_model_tensors(const NamedTensors& tensors, const std::string& tensor_path) {
  torch::NoGradGuard no_grad;
  auto ignored_list = model_->keys_to_ignore_on_save();
  std::set<std::string> ignored(ignored_list.begin(), ignored_list.end());
  auto restore = [&](const std::string& name, torch::Tensor target) {
    auto it = tensors.find("model/" + name);
    if (it == tensors.end()) {
      if (ignored.count(name)) return;  // frozen verifier tensors: rebuilt from the verifier
      fail_data(cat(tensor_path, ": tensor \"model/", name, "\" is missing"));
    }
    if (it->second.sizes() != target.sizes()) {
      fail_data(cat(tensor_path, ": tensor \"model/", name, "\" has shape ", it->second.sizes(), ", the model has ",
                    target.sizes()));
    }
    target.copy_(it->second.to(target.dtype()));
  };
  for (const auto& item : model_->named_parameters(true)) restore(item.key(), item.value());
  for (const auto& item : model_->named_buffers(true)) restore(item.key(), item.value());
}

void Trainer::resume_if_possible() {
  if (!options_.checkpoint.resume_from_checkpoint) {
    // Starting over: checkpoints of the earlier run would otherwise be resumed from later on.
    const auto old = store_.complete_epochs();
    if (!old.empty() && main_rank()) {
      log::warn(cat("--no-resume-from-checkpoint: removing ", old.size(), " earlier checkpoint(s) from ",
                    store_.root().string()));
      store_.remove_all_but(-1);
      std::error_code ec;
      fs::remove(store_.root() / "checkpoint_best", ec);
    }
    if (log_) log_->start(0);
    if (dp_->distributed()) dp_->barrier();
    return;
  }
  // The newest complete checkpoint that passes its checks; a damaged one is skipped with a warning
  // in favour of the one before it.
  std::optional<fs::path> found;
  Json state;
  std::string rejected;
  const auto epochs = store_.epochs();
  for (auto it = epochs.rbegin(); it != epochs.rend() && !found; ++it) {
    const fs::path candidate = store_.root() / std::to_string(*it);
    std::string missing;
    if (!store_.is_complete(candidate, &missing)) {
      log::warn(cat("not resuming from ", candidate.string(), ": it lacks ", missing));
      continue;
    }
    try {
      state = verify_checkpoint(candidate);
      found = candidate;
    } catch (const Error& e) {
      if (e.code() != ExitCode::kData) throw;
      log::warn(cat("not resuming from ", candidate.string(), ": ", e.what()));
      if (rejected.empty()) rejected = e.what();
    }
  }
  if (!found && !rejected.empty()) {
    fail_data(cat("no checkpoint in ", store_.root().string(), " can be resumed (", rejected,
                  "); restore a good copy, or start over with --no-resume-from-checkpoint"));
  }
  if (!found) {
    if (log_) log_->start(0);
    return;
  }
  const fs::path dir = *found;
  const std::string state_path = (dir / "trainer_state.json").string();
  // Checked when the epoch starts (train_epoch): packing, so the row count, varies by epoch.
  resume_batches_ = state.at("batches_per_epoch").as_int();
  resume_state_path_ = state_path;
  const Json& job = state.at("job");
  resume_world_size_ = static_cast<int>(state.get("world_size", Json(1)).as_int());
  // a step trains on world_size x grad_accum_steps packed rows; that product, not
  // either factor, is what the continued run must keep.
  const auto rows_then = resume_world_size_ * job.get("grad_accum_steps", Json(1)).as_int();
  const auto rows_now = dp_->world_size() * grad_accum_;
  if (rows_then != rows_now) {
    log::warn(cat("resuming with ", dp_->world_size(), " rank(s) x --grad-accum-steps ", grad_accum_, " = ", rows_now,
                  " packed rows per step (the checkpoint used ", resume_world_size_, " x ",
                  job.get("grad_accum_steps", Json(1)).as_int(), " = ", rows_then,
                  "): the continued run will differ from an uninterrupted one"));
  }
  for (const auto& key : trajectory_keys()) {
    const Json now = options_.job.json().get(key, Json()), then = job.get(key, Json());
    if (now != then) {
      log::warn(cat("resuming with ", key, " = ", now.dump(), " (the checkpoint used ", then.dump(),
                    "): the continued run will differ from an uninterrupted one"));
    }
  }
  const std::string tensor_path = (dir / "optimizer_state.safetensors").string();
  const NamedTensors tensors = load_safetensors(tensor_path);
  restore_model_tensors(tensors, tensor_path);
  optim_->load_state(tensors, tensor_path);
  // This rank's RNG state, or rank 0's when the checkpoint had fewer ranks.
  const std::string rng = tensors.count(rng_key(dp_->rank())) ? rng_key(dp_->rank()) : rng_key(0);
  if (!tensors.count(rng)) fail_data(cat(tensor_path, ": the RNG state \"", rng, "\" is missing"));
  set_cpu_rng_state(tensors.at(rng));

  const auto epoch = state.at("epoch").as_int();
  const auto local_step = state.at("local_step").as_int();
  epoch_ = local_step == 0 ? epoch + 1 : epoch;  // Trainer._save_training_state: local_step 0 marks an epoch's end
  resume_cursor_ = static_cast<std::size_t>(local_step);
  global_step_ = state.at("global_step").as_int();
  skipped_steps_ = state.at("skipped_steps").as_int();
  bad_streak_ = state.at("bad_streak").as_int();
  if (!state.at("best_val_loss").is_null()) best_val_loss_ = state.at("best_val_loss").as_double();
  if (!state.at("best_epoch").is_null()) {
    best_epoch_ = state.at("best_epoch").as_int();
    // The symlink is set after the directory is written; a crash in between is repaired here.
    if (main_rank() && fs::is_directory(store_.root() / std::to_string(*best_epoch_))) store_.set_best(*best_epoch_);
  }
  if (log_) log_->start(static_cast<std::uint64_t>(state.at("metrics_bytes").as_int()));
  if (dp_->distributed()) dp_->barrier();  // every rank has read the checkpoint before rank 0 writes again
  log::info(cat("resuming from ", dir.string(), ": epoch ", epoch_, ", packed row ", resume_cursor_, ", global step ",
                global_step_, " (--no-resume-from-checkpoint starts over)"));
}

}  // namespace speculators
