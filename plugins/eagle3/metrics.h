// Per-TTT-step loss and metrics of EAGLE-3 (speculators/models/eagle3/metrics.py): aligning step
// k's logits with the targets k positions later, the masked, decayed divergence, and the accuracy
// chain reported as sum/total pairs so that the host can reduce them across batches and ranks.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "speculators/algorithm.h"
#include "speculators/nn/losses.h"

namespace speculators {
namespace eagle3 {

struct AccuracyCounts {
  torch::Tensor full_correct;  // chains correct at every step so far, within the loss mask
  torch::Tensor full_total;    // positions in the loss mask
  torch::Tensor cond_correct;  // = full_correct
  torch::Tensor cond_total;    // chains still correct before this step (not re-masked)
};

// speculators/models/metrics.py: compute_accuracy_single_step. pred/target [N] int64; mask [N]
// (undefined = all); prev_correct [N] bool (undefined = all true) is AND-ed with this step's
// correctness in place.
AccuracyCounts accuracy_step(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& mask,
                             torch::Tensor prev_correct);

struct StepOutcome {
  torch::Tensor loss;       // scalar with grad
  TensorMap metrics;        // loss_{k}_sum/_total, {name}_loss_{k}_*, full_acc_{k}_*, cond_acc_{k}_*
  torch::Tensor predicted;  // [L] int64 argmax of every row of the logits (the step's proposals)
};

// Step k of the chain (eagle3/metrics.py: align_for_step): logits[:L-k] against targets[k:],
// mask[k:], prev_correct[:L-k] (a view, updated in place). logits/targets [L, Vd], loss_mask [L]
// (undefined = all ones), prev_correct [L] bool.
// `targets` is the target side of all L rows, prepared once per forward (nn::target_distribution)
// and shared by the K steps.
StepOutcome step_loss_and_metrics(const torch::Tensor& logits, const nn::TargetDistribution& targets,
                                  const torch::Tensor& loss_mask, torch::Tensor& prev_correct, std::int64_t step,
                                  double decay_base, const nn::LossSpec& spec, std::int64_t loss_chunk_rows);
// The same from target logits [L, Vd].
StepOutcome step_loss_and_metrics(const torch::Tensor& logits, const torch::Tensor& targets,
                                  const torch::Tensor& loss_mask, torch::Tensor& prev_correct, std::int64_t step,
                                  double decay_base, const nn::LossSpec& spec, std::int64_t loss_chunk_rows);

}  // namespace eagle3
}  // namespace speculators
