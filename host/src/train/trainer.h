// The single-process training loop (speculators/train/trainer.py: Trainer.train_epoch): forward ->
// backward (gradient accumulation) -> non-finite guard -> clip -> optimizers (Muon + AdamW, or
// AdamW) -> LR schedule; a progress bar with loss and tokens/s; metrics.jsonl and TensorBoard
// lines; validation and the best checkpoint at each epoch end (Trainer.val_epoch); checkpoints that
// resume exactly (train_state.h), mid-epoch ones included; SIGINT/SIGTERM end the run with a
// resumable checkpoint (signals.h). With several ranks (distributed.h) every decision that changes
// control flow (a non-finite step, a signal) is agreed over the ranks first; only rank 0 writes
// logs and checkpoints.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "data/loader.h"
#include "observe/metrics.h"
#include "observe/run_log.h"
#include "speculators/algorithm.h"
#include "train/device.h"
#include "train/distributed.h"
#include "train/optim.h"
#include "train/train_options.h"
#include "train/train_state.h"

namespace speculators {

struct TrainSummary {
  std::int64_t global_step = 0;
  std::int64_t skipped_steps = 0;
  std::map<std::string, double> last_train;
  std::map<std::string, double> last_val;
  std::string last_checkpoint;
  bool interrupted = false;
};

class Trainer {
 public:
  // `comm` is this process's place in the job (make_local_communicator() for one process).
  // `device`: where the model already is, and whether forward and loss run under bf16 autocast;
  // batches are moved there. `declared_groups`: ask the draft for its optimizer groups
  // (DraftModel::optimizer_group; false for a plugin built for plugin ABI < 2.1, which gets
  // reference_optimizer_group).
  Trainer(const TrainOptions& options, const Algorithm& algorithm, std::shared_ptr<DraftModel> model, Loader& train,
          Loader* val, Communicator& comm, const TrainingDevice& device = {}, bool declared_groups = true);
  ~Trainer();
  // Trains to the end (or --max-steps). Resumes from the newest checkpoint in --save-path unless
  // --no-resume-from-checkpoint. Throws Error(kInterrupted) after writing a checkpoint when a
  // signal arrived, and Error after --max-bad-steps consecutive non-finite steps.
  TrainSummary run();

 private:
  enum class Stop { kNone, kMaxSteps, kInterrupted };
  // trainer_checkpoint.cpp
  void resume_if_possible();
  void restore_model_tensors(const NamedTensors& tensors, const std::string& tensor_path);
  void save_checkpoint(std::int64_t epoch, std::int64_t local_step, const std::map<std::string, double>* best_val);
  void fill_checkpoint(const std::filesystem::path& dir, std::int64_t epoch, std::int64_t local_step,
                       const std::map<std::string, double>* best_val, const NamedTensors& state_tensors);
  bool epoch_end_save_due(std::int64_t epoch) const;
  bool mid_epoch_save_due(std::int64_t steps_done_in_epoch) const;
  // trainer.cpp
  Stop train_epoch(std::int64_t epoch);
  void optimizer_step(std::int64_t epoch);
  void log_step(std::int64_t epoch, const std::map<std::string, double>& values, double grad_norm, double step_ms,
                double fetch_ms, std::int64_t tokens);
  std::optional<std::map<std::string, double>> validate(std::int64_t epoch);
  void finish_epoch(std::int64_t epoch);
  [[noreturn]] void stop_interrupted(std::int64_t epoch);
  std::int64_t steps_per_epoch() const;
  bool main_rank() const { return dp_->rank() == 0; }
  // Any rank's signal, agreed by all (a collective when distributed).
  bool interrupt_agreed();
  void zero_grads();
  std::map<std::string, double> reduced_metrics(const MetricAccumulator& acc, const MetricKeyContract& keys);
  // Moves the batch to the device and runs the model under the run's precision.
  ForwardResult forward(Batch& batch, const Json& kwargs);

  const TrainOptions options_;
  const Algorithm& algorithm_;
  TrainingDevice device_;
  std::shared_ptr<DraftModel> model_;
  Loader& train_;
  Loader* val_;
  std::vector<NamedParam> trainable_;
  std::unique_ptr<DataParallel> dp_;
  std::unique_ptr<OptimizerSet> optim_;
  std::unique_ptr<OptimizerSet> lr_probe_;  // sharded: every kind's LR, whichever this rank owns
  bool interrupt_ = false;                  // agreed in the last optimizer step
  LrSchedule schedule_;
  CheckpointStore store_;
  std::unique_ptr<RunLog> log_;
  Json train_kwargs_, val_kwargs_;
  std::int64_t grad_accum_ = 1;
  std::int64_t epoch_ = 0;             // the epoch being trained
  std::int64_t global_step_ = 0;       // optimizer steps attempted (skipped ones included)
  std::int64_t skipped_steps_ = 0;     // non-finite steps, in total
  std::int64_t bad_streak_ = 0;        // consecutive non-finite steps
  std::size_t resume_cursor_ = 0;      // packed row the resumed epoch starts at
  int resume_world_size_ = 0;          // world size the checkpoint was written at
  std::int64_t resume_batches_ = 0;    // that epoch's packed rows when it was saved
  std::string resume_state_path_;
  std::optional<double> best_val_loss_;
  std::optional<std::int64_t> best_epoch_;
  bool forward_checked_ = false;
  MetricKeyContract train_keys_{"training"};
  MetricKeyContract val_keys_{"validation"};
  TrainSummary summary_;
};

}  // namespace speculators
