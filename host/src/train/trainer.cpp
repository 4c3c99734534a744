// The training loop (see trainer.h); checkpoint contents and resume are in trainer_checkpoint.cpp.
#include "train/trainer.h"

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "observe/metrics.h"
#include "observe/progress.h"
#include "plugin_host/plugin_call.h"
#include "speculators/autocast.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "train/signals.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string short_metrics(const std::map<std::string, double>& values, const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    auto it = values.find(k);
    if (it == values.end()) continue;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s%s=%.4g", out.empty() ? "" : " ", k.c_str(), it->second);
    out += buf;
  }
  return out;
}

}  // namespace

Trainer::Trainer(const TrainOptions& options, const Algorithm& algorithm, std::shared_ptr<DraftModel> model,
                 Loader& train, Loader* val, Communicator& comm, const TrainingDevice& device, bool declared_groups)
    : options_(options),
      algorithm_(algorithm),
      device_(device),
      model_(std::move(model)),
      train_(train),
      val_(val),
      store_(options.checkpoint.save_path, options.checkpoint.keep_last) {
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    trainable_.push_back({item.key(), item.value()});
  }
  if (trainable_.empty()) {
    fail(cat("algorithm ", algorithm_.name(), ": the model has no trainable parameters"), ExitCode::kPlugin);
  }
  grad_accum_ = options_.optimizer.grad_accum_steps;
  if (grad_accum_ < 1) fail_usage(cat("--grad-accum-steps must be >= 1, got ", grad_accum_));
  if (options_.loop.max_bad_steps < 1) {
    fail_usage(cat("--max-bad-steps must be >= 1, got ", options_.loop.max_bad_steps));
  }
  if (options_.checkpoint.checkpoint_freq <= 0) {
    fail_usage(cat("--checkpoint-freq must be > 0, got ", options_.checkpoint.checkpoint_freq));
  }
  dp_ = std::make_unique<DataParallel>(comm, parse_shard_mode(options_.distributed.shard), *model_, trainable_);
  // The optimizer groups, asked once over the whole model (a shard owns a part of it, by name).
  std::map<std::string, OptimizerGroup> groups;
  for (const auto& np : trainable_) {
    groups[np.name] = declared_groups ? call_plugin(algorithm_.name(), "optimizer_group",
                                                    [&] { return model_->optimizer_group(np.name, np.param); })
                                      : reference_optimizer_group(np.name, np.param);
  }
  const OptimizerGroupFn group_of = [groups](const NamedParam& np) {
    auto it = groups.find(np.name);
    return it != groups.end() ? it->second : reference_optimizer_group(np.name, np.param);
  };
  optim_ = std::make_unique<OptimizerSet>(options_.optimizer, dp_->owned(), group_of);
  if (dp_->mode() != ShardMode::kNone) {
    lr_probe_ = std::make_unique<OptimizerSet>(options_.optimizer, trainable_, group_of);
  }
  std::tie(train_kwargs_, val_kwargs_) =
      call_plugin(algorithm_.name(), "trainer_kwargs", [&] { return algorithm_.trainer_kwargs(options_.job); });
  schedule_ = make_schedule(options_.scheduler, options_.loop, steps_per_epoch());
  if (main_rank()) log_ = std::make_unique<RunLog>(options_.log);
}

Trainer::~Trainer() = default;

std::int64_t Trainer::steps_per_epoch() const {
  const auto n = static_cast<std::int64_t>(train_.num_batches());
  return (n + grad_accum_ - 1) / grad_accum_;
}

void Trainer::zero_grads() {
  // Every trainable tensor, not only the ones this rank's optimizer steps: after a skipped step a
  // sharded rank still holds gradients of units it does not own.
  for (auto& np : trainable_) {
    auto& g = np.param.mutable_grad();
    if (g.defined()) {
      g = g.detach();
      g.zero_();
    }
  }
}

bool Trainer::interrupt_agreed() {
  return dp_->all_reduce({InterruptGuard::requested() ? 1.0 : 0.0}, ReduceOp::kMax)[0] > 0;
}

std::map<std::string, double> Trainer::reduced_metrics(const MetricAccumulator& acc, const MetricKeyContract& keys) {
  if (!dp_->distributed()) return acc.values();
  // Each rank has checked its own batches (MetricKeyContract::check); here the ranks compare their
  // key sets, in one collective (max and -min of the count and of the set's fingerprint).
  const double count = static_cast<double>(acc.num_keys()), print = keys.fingerprint();
  const auto range = dp_->all_reduce({count, -count, print, -print}, ReduceOp::kMax);
  if (range[0] != -range[1] || range[2] != -range[3]) {
    fail(cat("algorithm ", algorithm_.name(), " (metrics): ranks returned different metric keys in ", keys.phase(),
             " (", -range[1], " to ", range[0], " keys); ", MetricKeyContract::rule()),
         ExitCode::kPlugin);
  }
  MetricAccumulator total = acc;
  total.load_raw(dp_->all_reduce(acc.raw()));
  return total.values();
}

ForwardResult Trainer::forward(Batch& batch, const Json& kwargs) {
  batch_to_device(batch, device_.device);
  // As the reference's `with torch.autocast(device_type, dtype=...)`: forward and loss in bf16,
  // backward outside (its casts follow the forward's).
  AutocastGuard autocast(device_.device, torch::kBFloat16, device_.bf16);
  return call_plugin(algorithm_.name(), "forward", [&] { return model_->forward(batch, kwargs); });
}

TrainSummary Trainer::run() {
  InterruptGuard interrupts;
  dp_->broadcast_model();  // every rank starts from rank 0's initialisation
  resume_if_possible();
  const auto epochs = options_.loop.epochs;
  const std::optional<std::int64_t> max_steps = options_.loop.max_steps;
  std::string parts;
  for (const auto& part : optim_->parts()) {
    parts += cat(parts.empty() ? "" : " + ", part->kind(), " (", part->params().size(), " tensors, lr ",
                 part->base_lr(), ")");
  }
  log::info(cat("training ", algorithm_.name(), ": ", epochs, " epochs x ", steps_per_epoch(), " steps (",
                train_.num_batches(), " packed rows, ", grad_accum_, " per step", dp_->distributed()
                    ? cat(" per rank, ", dp_->world_size(), " ranks, ", dp_->comm().backend(), ", --shard ",
                          to_string(dp_->mode()))
                    : std::string(),
                "); ", parts, "; schedule ", schedule_.type, " over ", schedule_.total_steps, " steps, warmup ",
                schedule_.warmup_steps));
  log::info(cat("device: ", device_.describe()));
  for (; epoch_ < epochs; ++epoch_) {
    if (max_steps && global_step_ >= *max_steps) break;
    const Stop stop = train_epoch(epoch_);
    if (stop == Stop::kInterrupted) stop_interrupted(epoch_);
    finish_epoch(epoch_);
    // --max-steps ends the run (the reference's trainer.py takes one more step per remaining epoch).
    if (max_steps && global_step_ >= *max_steps) break;
  }
  if (log_) log_->write_report();
  summary_.global_step = global_step_;
  summary_.skipped_steps = skipped_steps_;
  return summary_;
}

Trainer::Stop Trainer::train_epoch(std::int64_t epoch) {
  model_->train();
  const bool resharded = resume_cursor_ > 0 && resume_world_size_ != dp_->world_size();
  if (resharded) {
    // A checkpoint from another world size: the rest of its epoch is packed for this one.
    train_.start_epoch_resharded(epoch, resume_cursor_, resume_world_size_);
    log::info(cat("epoch ", epoch, ": the checkpoint was written by ", resume_world_size_, " rank(s) after ",
                  resume_cursor_, " packed rows each; the rest of the epoch is packed for ", dp_->world_size()));
  } else {
    train_.start_epoch(epoch, resume_cursor_);
  }
  if (!resharded && resume_cursor_ > 0 && resume_batches_ != static_cast<std::int64_t>(train_.num_batches())) {
    fail_data(cat(resume_state_path_, ": the checkpoint was taken with ", resume_batches_, " packed rows in epoch ",
                  epoch, ", the data now gives ", train_.num_batches(), "; resume with the same data and "
                  "--total-seq-len, or pass --no-resume-from-checkpoint to start over"));
  }
  resume_cursor_ = 0;
  const std::size_t n = train_.num_batches();
  const std::optional<std::int64_t> max_steps = options_.loop.max_steps;
  std::unique_ptr<ProgressBar> bar;  // rank 0 draws it
  if (main_rank()) bar = std::make_unique<ProgressBar>(cat("epoch ", epoch), steps_per_epoch());
  while (train_.position() < n) {
    if (max_steps && global_step_ >= *max_steps) return Stop::kMaxSteps;
    optimizer_step(epoch);
    const auto done = static_cast<std::int64_t>((train_.position() + grad_accum_ - 1) / grad_accum_);
    if (bar) bar->update(done, short_metrics(summary_.last_train, {"loss"}));
    if (interrupt_) {
      if (bar) bar->finish();
      return Stop::kInterrupted;
    }
    if (train_.position() < n && mid_epoch_save_due(done)) {
      save_checkpoint(epoch, static_cast<std::int64_t>(train_.position()), nullptr);
    }
  }
  if (bar) bar->finish(short_metrics(summary_.last_train, {"loss"}));
  // Reading past the last batch lets the loader close its epoch (it reports skipped samples).
  if (train_.next()) fail(cat("the data loader yielded more than its ", n, " packed rows in epoch ", epoch));
  return Stop::kNone;
}

void Trainer::optimizer_step(std::int64_t epoch) {
  const std::size_t first = train_.position();
  const std::size_t group = std::min<std::size_t>(grad_accum_, train_.num_batches() - first);
  const auto t0 = Clock::now();
  dp_->gather_parameters();  // --shard full: this step's forward needs every unit
  zero_grads();
  MetricAccumulator acc;
  double fetch_ms = 0;
  std::int64_t tokens = 0;
  bool bad_loss = false;
  for (std::size_t i = 0; i < group; ++i) {
    const auto tf = Clock::now();
    auto batch = train_.next();
    fetch_ms += ms_since(tf);
    if (!batch) break;
    tokens += (batch->at("document_ids") != -1).sum().item<std::int64_t>();  // on the host copy
    auto result = forward(*batch, train_kwargs_);
    if (!forward_checked_) {
      check_forward_result(result, algorithm_.name());
      forward_checked_ = true;
    }
    train_keys_.check(result.metrics, algorithm_.name());
    if (bad_loss || !std::isfinite(result.loss.detach().item<double>())) {
      bad_loss = true;  // the rest of the group is read (the cursor stays aligned) but not trained on
      continue;
    }
    // Gradients of the group average over its batches.
    call_plugin(algorithm_.name(), "loss", [&] { (result.loss / static_cast<double>(group)).backward(); });
    call_plugin(algorithm_.name(), "metrics", [&] { acc.add(result.metrics); });
  }
  // One collective agrees on what every rank saw: a non-finite loss anywhere skips the step
  // everywhere, and a signal to any rank stops all of them after this step.
  const auto agreed = dp_->all_reduce({bad_loss ? 1.0 : 0.0, InterruptGuard::requested() ? 1.0 : 0.0},
                                      ReduceOp::kMax);
  bad_loss = agreed[0] > 0;
  interrupt_ = agreed[1] > 0;
  double grad_norm = std::nan("");
  if (!bad_loss) {
    dp_->sync_gradients();
    grad_norm = dp_->clip_grad_norm(options_.optimizer.max_grad_norm);
  }
  const bool bad = bad_loss || !std::isfinite(grad_norm);
  optim_->set_lr_factor(schedule_.factor(global_step_));
  if (lr_probe_) lr_probe_->set_lr_factor(schedule_.factor(global_step_));
  if (bad) {
    zero_grads();
    ++skipped_steps_;
    ++bad_streak_;
    const std::string what = bad_loss ? "loss" : "gradient";
    log::warn(cat("step ", global_step_, ": non-finite ", what, "; step skipped (", bad_streak_, " in a row, limit ",
                  options_.loop.max_bad_steps, ")"));
    if (log_) {
      log_->write(Json::object({{"epoch", epoch}, {"global_step", global_step_}, {"skipped", "non-finite " + what},
                                {"skipped_steps", skipped_steps_}}),
                  global_step_);
    }
  } else {
    optim_->step();
    bad_streak_ = 0;
  }
  dp_->after_step();
  if (!bad && global_step_ % std::max<std::int64_t>(1, options_.loop.log_freq) == 0) {
    // as speculators/train/trainer.py: _all_reduce_metrics: sum/total pairs are summed over ranks;
    // tokens/s is rank 0's batch.
    log_step(epoch, reduced_metrics(acc, train_keys_), grad_norm, ms_since(t0), fetch_ms, tokens);
  }
  ++global_step_;
  if (bad && bad_streak_ >= options_.loop.max_bad_steps) {
    // Skipped steps change no weight or optimizer state: what is saved is the last good state,
    // with the data cursor past the batches that failed. The report (from metrics.jsonl) comes
    // first, as a save that finds non-finite weights ends the run.
    if (log_) log_->write_report();
    save_checkpoint(epoch, static_cast<std::int64_t>(train_.position()), nullptr);
    fail(cat("stopping: ", bad_streak_, " consecutive steps had a non-finite loss or gradient (up to step ",
             global_step_ - 1, "; --max-bad-steps ", options_.loop.max_bad_steps,
             "). The last good state is in ", summary_.last_checkpoint,
             "; lower --lr or check the data before resuming"));
  }
}

void Trainer::log_step(std::int64_t epoch, const std::map<std::string, double>& values, double grad_norm,
                       double step_ms, double fetch_ms, std::int64_t tokens) {
  summary_.last_train = values;
  if (!log_) return;
  const auto lrs = (lr_probe_ ? lr_probe_ : optim_)->lrs();  // read after the optimizer step
  Json line = Json::object({{"epoch", epoch}, {"global_step", global_step_}});
  line["lr"] = lrs.count("adamw") ? lrs.at("adamw") : lrs.begin()->second;
  if (lrs.count("muon")) line["lr/muon"] = lrs.at("muon");
  for (const auto& [k, v] : values) line["train/" + k] = v;
  line["train/acceptance_length"] = estimated_acceptance_length(values);
  line["train/grad_norm"] = grad_norm;
  line["profile/step_ms"] = step_ms;
  line["profile/fetch_ms"] = fetch_ms;
  line["profile/fetch_frac"] = fetch_ms / std::max(1e-9, step_ms);  // share of the step waiting for data
  // non-padding tokens of the step over its wall time.
  line["profile/tokens_per_s"] = static_cast<double>(tokens) / std::max(1e-9, step_ms / 1000.0);
  log_->write(line, global_step_);
}

std::optional<std::map<std::string, double>> Trainer::validate(std::int64_t epoch) {
  std::map<std::string, double> values;
  if (val_ == nullptr || val_->empty()) return values;
  dp_->gather_parameters();
  model_->eval();
  torch::NoGradGuard no_grad;
  val_->start_epoch(epoch);
  MetricAccumulator acc;
  while (auto batch = val_->next()) {
    auto result = forward(*batch, val_kwargs_);
    val_keys_.check(result.metrics, algorithm_.name());
    call_plugin(algorithm_.name(), "metrics", [&] { acc.add(result.metrics); });
    if (interrupt_agreed()) {
      model_->train();
      return std::nullopt;  // abandoned: the checkpoint written next reruns it on resume
    }
  }
  model_->train();
  values = reduced_metrics(acc, val_keys_);  // pairs summed over ranks (Trainer.val_epoch)
  if (values.empty() || !log_) return values;
  const double tau = estimated_acceptance_length(values);
  Json line = Json::object({{"epoch", epoch}, {"global_step", global_step_}});
  for (const auto& [k, v] : values) line["val/" + k + "_epoch"] = v;
  line["val/acceptance_length_epoch"] = tau;
  log_->write(line, global_step_);
  std::vector<std::string> keys = {"loss"};
  for (const auto& [k, v] : values) {
    if (k.rfind("full_acc_", 0) == 0 || k.rfind("acc_", 0) == 0) keys.push_back(k);
  }
  log::info(cat("epoch ", epoch, " validation: ", short_metrics(values, keys),
                tau > 0 ? cat(" | estimated acceptance length ", tau) : std::string()));
  return values;
}

void Trainer::finish_epoch(std::int64_t epoch) {
  // A run stopped by --max-steps inside an epoch saves that epoch's cursor, so it can go on later.
  if (train_.position() < train_.num_batches()) {
    // Saved before validating, so a resumed run's metrics.jsonl (cut at the checkpoint) does not
    // keep this mid-epoch validation line and reads like one uninterrupted run.
    save_checkpoint(epoch, static_cast<std::int64_t>(train_.position()), nullptr);
    auto val = validate(epoch);
    if (!val) stop_interrupted(epoch);
    summary_.last_val = *val;
    return;
  }
  auto val = validate(epoch);
  if (!val) stop_interrupted(epoch);
  summary_.last_val = *val;
  // Trainer.maybe_update_best: the best checkpoint follows the validation loss.
  const bool improved = val->count("loss") && std::isfinite(val->at("loss")) &&
                        (!best_val_loss_ || val->at("loss") < *best_val_loss_);
  const bool save_best = options_.checkpoint.save_best;
  const bool save = save_best ? improved : epoch_end_save_due(epoch);
  if (!save) return;
  if (improved) {
    best_val_loss_ = val->at("loss");
    best_epoch_ = epoch;
  }
  save_checkpoint(epoch, 0, improved ? &*val : nullptr);
  if (improved) {
    store_.set_best(epoch);
    if (save_best) store_.remove_all_but(epoch);
  }
}

void Trainer::stop_interrupted(std::int64_t epoch) {
  const int signo = InterruptGuard::signal_number();
  // position() is past every batch already trained on; at the epoch's end it equals
  // num_batches, and the resumed run goes straight to this epoch's validation.
  save_checkpoint(epoch, static_cast<std::int64_t>(train_.position()), nullptr);
  if (log_) log_->write_report();
  throw Error(cat("interrupted by ", signo == SIGTERM ? "SIGTERM" : "SIGINT", " at step ", global_step_,
                  ": wrote a resumable checkpoint to ", summary_.last_checkpoint,
                  "; run the same command again to continue"),
              ExitCode::kInterrupted);
}

}  // namespace speculators
