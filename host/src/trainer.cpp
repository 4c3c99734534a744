// The training loop (see trainer.h).
#include "trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "metrics.h"
#include "progress.h"
#include "speculators/checkpoint.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace fs = std::filesystem;

namespace speculators {

double lr_factor(const std::string& type, std::int64_t step, std::int64_t total, std::int64_t warmup,
                 double cosine_cycles) {
  if (type == "none") return 1.0;
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup));
  const double span = static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  const double progress = static_cast<double>(step - warmup) / span;
  if (type == "cosine") {
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * cosine_cycles * progress)));
  }
  return std::max(0.0, static_cast<double>(total - step) / span);
}

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

Trainer::Trainer(const Args& args, const Algorithm& algorithm, std::shared_ptr<DraftModel> model, Loader& train,
                 Loader* val)
    : args_(args), algorithm_(algorithm), model_(std::move(model)), train_(train), val_(val) {
  for (auto& p : model_->parameters()) {
    if (p.requires_grad()) trainable_.push_back(p);
  }
  if (trainable_.empty()) fail(cat("algorithm ", algorithm_.name(), ": the model has no trainable parameters"), ExitCode::kPlugin);
  base_lr_ = args_.get_double("lr");
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      trainable_, torch::optim::AdamWOptions(base_lr_).weight_decay(args_.get_double("weight_decay")));
  std::tie(train_kwargs_, val_kwargs_) = algorithm_.trainer_kwargs(args_);

  const auto epochs = args_.get_int("epochs");
  total_steps_ = args_.has("scheduler_total_steps") ? args_.get_int("scheduler_total_steps")
                                                     : epochs * static_cast<std::int64_t>(train_.num_batches());
  if (args_.has("max_steps")) total_steps_ = std::min(total_steps_, args_.get_int("max_steps"));
  if (args_.has("scheduler_warmup_steps")) {
    warmup_steps_ = args_.get_int("scheduler_warmup_steps");
  } else if (args_.has("scheduler_warmup_ratio")) {
    warmup_steps_ = static_cast<std::int64_t>(std::floor(total_steps_ * args_.get_double("scheduler_warmup_ratio")));
  } else {
    warmup_steps_ = total_steps_ / 100;  // facts §4.3: 1%
  }
  const std::string log_dir = args_.has("log_dir") ? args_.get_string("log_dir") : args_.get_string("save_path");
  fs::create_directories(log_dir);
  metrics_path_ = (fs::path(log_dir) / "metrics.jsonl").string();
  std::ofstream(metrics_path_, std::ios::trunc);
}

void Trainer::set_lr(double factor) {
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(base_lr_ * factor);
  }
}

void Trainer::log_line(const Json& line) {
  std::ofstream out(metrics_path_, std::ios::app);
  out << line.dump() << "\n";
  if (!out) fail(cat(metrics_path_, ": cannot append a metrics line"));
}

TrainSummary Trainer::run() {
  const auto epochs = args_.get_int("epochs");
  log::info(cat("training ", algorithm_.name(), ": ", epochs, " epochs x ", train_.num_batches(),
                " steps, ", trainable_.size(), " trainable tensors, total steps ", total_steps_, ", warmup ",
                warmup_steps_));
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    if (args_.has("max_steps") && global_step_ >= args_.get_int("max_steps")) break;
    train_epoch(epoch);
    save_checkpoint(epoch);
    if (val_ != nullptr && !val_->empty()) summary_.last_val = validate(epoch);
  }
  summary_.global_step = global_step_;
  return summary_;
}

void Trainer::train_epoch(std::int64_t epoch) {
  model_->train();
  train_.start_epoch(epoch);
  const auto grad_clip = args_.get_double("max_grad_norm");
  const auto log_freq = std::max<std::int64_t>(1, args_.get_int("log_freq"));
  const std::optional<std::int64_t> max_steps = args_.get_optional_int("max_steps");
  ProgressBar bar(cat("epoch ", epoch), static_cast<std::int64_t>(train_.num_batches()));
  std::int64_t step_in_epoch = 0;
  double tokens_per_s = 0;
  std::map<std::string, double> values;
  while (true) {
    if (max_steps && global_step_ >= *max_steps) break;
    auto t0 = Clock::now();
    auto batch = train_.next();
    if (!batch) break;
    double fetch_ms = ms_since(t0);
    auto t1 = Clock::now();
    auto result = model_->forward(*batch, train_kwargs_);
    if (global_step_ == 0) check_forward_result(result, algorithm_.name());
    double fwd_ms = ms_since(t1);
    auto t2 = Clock::now();
    optimizer_->zero_grad();
    result.loss.backward();
    double bwd_ms = ms_since(t2);
    auto t3 = Clock::now();
    torch::nn::utils::clip_grad_norm_(trainable_, grad_clip);
    const double factor = lr_factor(args_.get_string("scheduler_type"), global_step_, total_steps_, warmup_steps_,
                                    args_.get_double("scheduler_num_cosine_cycles"));
    set_lr(factor);
    optimizer_->step();
    double opt_ms = ms_since(t3);
    double step_ms = ms_since(t0);
    const auto tokens = (batch->at("document_ids") != -1).sum().item<std::int64_t>();
    tokens_per_s = tokens / std::max(1e-9, step_ms / 1000.0);

    if (global_step_ % log_freq == 0) {
      MetricAccumulator acc;
      acc.add(result.metrics);
      values = acc.values();
      Json line = Json::object({{"epoch", epoch}, {"global_step", global_step_}, {"lr", base_lr_ * factor}});
      for (const auto& [k, v] : values) line["train/" + k] = v;
      line["train/acceptance_length"] = estimated_acceptance_length(values);
      line["profile/fetch_ms"] = fetch_ms;
      line["profile/fwd_ms"] = fwd_ms;
      line["profile/bwd_ms"] = bwd_ms;
      line["profile/opt_ms"] = opt_ms;
      line["profile/step_ms"] = step_ms;
      line["profile/fetch_frac"] = fetch_ms / std::max(1e-9, step_ms);
      line["profile/tokens_per_s"] = tokens_per_s;
      log_line(line);
    }
    ++global_step_;
    ++step_in_epoch;
    char rate[48];
    std::snprintf(rate, sizeof(rate), " tok/s=%.0f", tokens_per_s);
    bar.update(step_in_epoch, short_metrics(values, {"loss"}) + rate);
  }
  bar.finish(short_metrics(values, {"loss"}));
  summary_.last_train = values;
}

std::map<std::string, double> Trainer::validate(std::int64_t epoch) {
  model_->eval();
  torch::NoGradGuard no_grad;
  val_->start_epoch(epoch);
  MetricAccumulator acc;
  while (auto batch = val_->next()) acc.add(model_->forward(*batch, val_kwargs_).metrics);
  model_->train();
  auto values = acc.values();
  if (values.empty()) return values;
  const double tau = estimated_acceptance_length(values);
  Json line = Json::object({{"epoch", epoch}, {"global_step", global_step_}});
  for (const auto& [k, v] : values) line["val/" + k + "_epoch"] = v;
  line["val/acceptance_length_epoch"] = tau;
  log_line(line);
  std::vector<std::string> keys = {"loss"};
  for (const auto& [k, v] : values) {
    if (k.rfind("full_acc_", 0) == 0 || k.rfind("acc_", 0) == 0) keys.push_back(k);
  }
  log::info(cat("epoch ", epoch, " validation: ", short_metrics(values, keys),
                tau > 0 ? cat(" | estimated acceptance length ", tau) : std::string()));
  return values;
}

void Trainer::save_checkpoint(std::int64_t epoch) {
  // facts §4.5: <save_path>/<epoch>/ with config.json, model.safetensors, training_state.json.
  // Written into a temporary directory and renamed, so a crash never leaves a half checkpoint.
  const fs::path root = args_.get_string("save_path");
  const fs::path final_dir = root / std::to_string(epoch);
  const fs::path tmp_dir = root / cat(".tmp-", epoch);
  fs::remove_all(tmp_dir);
  save_draft(*model_, tmp_dir.string());
  Json state = Json::object({{"epoch", epoch}, {"local_step", 0}, {"global_step", global_step_}});
  write_file_atomic((tmp_dir / "training_state.json").string(), state.dump_python());
  fs::remove_all(final_dir);
  fs::rename(tmp_dir, final_dir);
  summary_.last_checkpoint = final_dir.string();
  log::info(cat("saved checkpoint ", final_dir.string()));
}

}  // namespace speculators
