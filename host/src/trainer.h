// The single-process training loop (facts §4.1): forward -> backward -> clip -> AdamW -> LR
// schedule, a progress bar with loss and tokens/s, one metrics.jsonl line per log step,
// validation at each epoch end and a checkpoint per epoch in the reference layout (§4.5).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data.h"
#include "speculators/algorithm.h"

namespace speculators {

// facts §4.3: the LR factor at optimizer step `step` (0-based) of `total`.
double lr_factor(const std::string& type, std::int64_t step, std::int64_t total, std::int64_t warmup,
                 double cosine_cycles);

struct TrainSummary {
  std::int64_t global_step = 0;
  std::map<std::string, double> last_train;
  std::map<std::string, double> last_val;
  std::string last_checkpoint;
};

class Trainer {
 public:
  Trainer(const Args& args, const Algorithm& algorithm, std::shared_ptr<DraftModel> model, Loader& train,
          Loader* val);
  TrainSummary run();

 private:
  void train_epoch(std::int64_t epoch);
  std::map<std::string, double> validate(std::int64_t epoch);
  void save_checkpoint(std::int64_t epoch);
  void set_lr(double factor);
  void log_line(const Json& line);

  const Args& args_;
  const Algorithm& algorithm_;
  std::shared_ptr<DraftModel> model_;
  Loader& train_;
  Loader* val_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<torch::Tensor> trainable_;
  Json train_kwargs_, val_kwargs_;
  std::int64_t total_steps_ = 0, warmup_steps_ = 0, global_step_ = 0;
  double base_lr_ = 0;
  std::string metrics_path_;
  TrainSummary summary_;
};

}  // namespace speculators
