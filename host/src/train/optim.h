// The optimizers and the learning-rate schedule (speculators/train/optimizers.py: build_optimizers;
// the schedules of speculators/train/trainer.py: Trainer.setup_optimizer), written out here rather
// than taken from torch::optim so that their whole state is plain named fp32 tensors: a checkpoint
// stores it exactly (the reference rounds it to bf16 in checkpointer.py: convert_float_dtype; this
// host does not) and a resumed run continues bit for bit.
//   - AdamW: torch's update (decoupled weight decay, bias-corrected moments).
//   - Muon: momentum, Nesterov, then Newton–Schulz orthogonalisation of the update, for the 2-D
//     hidden weights; AdamW takes every other trainable tensor (the reference's default).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "train/train_options.h"

namespace speculators {

using NamedTensors = std::map<std::string, torch::Tensor>;

struct NamedParam {
  std::string name;
  torch::Tensor param;
};

// One optimizer over a list of named parameters with one learning rate.
class ParamOptimizer {
 public:
  ParamOptimizer(std::vector<NamedParam> params, double base_lr) : params_(std::move(params)), base_lr_(base_lr) {}
  virtual ~ParamOptimizer() = default;
  virtual std::string kind() const = 0;
  // One update from the parameters' .grad (parameters without a gradient are left alone).
  virtual void step() = 0;
  // Per-parameter state as fp32/int64 tensors named "<prefix><param>/<slot>".
  virtual void save_state(const std::string& prefix, NamedTensors& out) const = 0;
  // Restores what save_state wrote; a missing or misshapen tensor throws Error naming `origin`.
  virtual void load_state(const std::string& prefix, const NamedTensors& in, const std::string& origin) = 0;

  const std::vector<NamedParam>& params() const { return params_; }
  double base_lr() const { return base_lr_; }
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }

 protected:
  std::vector<NamedParam> params_;
  double base_lr_;
  double lr_ = 0;
};

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW : public ParamOptimizer {
 public:
  AdamW(std::vector<NamedParam> params, double lr, AdamWOptions options);
  std::string kind() const override { return "adamw"; }
  void step() override;
  void save_state(const std::string& prefix, NamedTensors& out) const override;
  void load_state(const std::string& prefix, const NamedTensors& in, const std::string& origin) override;

 private:
  struct Slot {
    std::int64_t step = 0;
    torch::Tensor exp_avg, exp_avg_sq;
  };
  AdamWOptions options_;
  std::map<std::string, Slot> state_;
};

struct MuonOptions {
  double momentum = 0.95, weight_decay = 0.1, eps = 1e-7;
  int ns_steps = 5;
  bool nesterov = true;
  std::string adjust_lr_fn = "match_rms_adamw";  // or "original"
};

// torch.optim.Muon: X / max(||X||_F, eps), transposed so rows <= cols, then `steps` iterations of
// X <- aX + (bA + cA²)X with A = XXᵀ and (a, b, c) = (3.4445, -4.7750, 2.0315). Computed in fp32.
torch::Tensor newton_schulz(const torch::Tensor& update, int steps, double eps);

// torch.optim.Muon's adjust_lr_fn: lr·0.2·√max(rows, cols) ("match_rms_adamw") or lr·√max(1,
// rows/cols) ("original").
double muon_adjusted_lr(double lr, const std::string& adjust_lr_fn, std::int64_t rows, std::int64_t cols);

class Muon : public ParamOptimizer {
 public:
  Muon(std::vector<NamedParam> params, double lr, MuonOptions options);
  std::string kind() const override { return "muon"; }
  void step() override;
  // Every parameter has a momentum buffer in the state (zeros before its first gradient, which is
  // what a step starts from), so a checkpoint without one is refused by name (Error kData).
  void save_state(const std::string& prefix, NamedTensors& out) const override;
  void load_state(const std::string& prefix, const NamedTensors& in, const std::string& origin) override;

 private:
  MuonOptions options_;
  std::map<std::string, torch::Tensor> momentum_;
};

// Which optimizer each parameter gets under --optimizer muon: the draft declares it
// (DraftModel::optimizer_group); reference_optimizer_group (speculators/algorithm.h) is the default.
using OptimizerGroupFn = std::function<OptimizerGroup(const NamedParam&)>;

// The LR factor (transformers' get_linear/cosine_schedule_with_warmup) at step `step` (0-based) of `total`.
double lr_factor(const std::string& type, std::int64_t step, std::int64_t total, std::int64_t warmup,
                 double cosine_cycles);

struct LrSchedule {
  std::string type = "linear";
  std::int64_t total_steps = 0, warmup_steps = 0;
  double cosine_cycles = 0.5;
  double factor(std::int64_t step) const { return lr_factor(type, step, total_steps, warmup_steps, cosine_cycles); }
};

// Resolves the schedule of a job (trainer.py: _resolve_scheduler_steps) for `steps_per_epoch` optimizer steps an
// epoch; the loop's epochs and max_steps bound the default total.
LrSchedule make_schedule(const SchedulerOptions& options, const LoopOptions& loop, std::int64_t steps_per_epoch);

// The optimizers of a job: [Muon, AdamW] for --optimizer muon, [AdamW] for adamw (optimizers.py: build_optimizers).
class OptimizerSet {
 public:
  // `group_of` empty: reference_optimizer_group on each parameter's name and tensor.
  OptimizerSet(const OptimizerOptions& options, const std::vector<NamedParam>& trainable,
               const OptimizerGroupFn& group_of = {});
  void set_lr_factor(double factor);
  void step();
  // Logged LRs by optimizer kind, read after the step.
  std::map<std::string, double> lrs() const;
  NamedTensors state() const;
  void load_state(const NamedTensors& state, const std::string& origin);
  const std::vector<std::unique_ptr<ParamOptimizer>>& parts() const { return parts_; }

 private:
  std::vector<std::unique_ptr<ParamOptimizer>> parts_;
};

}  // namespace speculators
