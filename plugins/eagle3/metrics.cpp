// EAGLE-3 step losses and the accuracy chain (speculators/models/eagle3/metrics.py:
// compute_metrics; speculators/models/metrics.py: compute_accuracy_single_step).
#include "metrics.h"

#include <cmath>
#include <string>

#include "speculators/log.h"
#include "speculators/metric_pairs.h"

namespace speculators {
namespace eagle3 {

AccuracyCounts accuracy_step(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& mask,
                             torch::Tensor prev_correct) {
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat).device(pred.device());
  auto correct = pred.eq(target);
  AccuracyCounts out;
  out.cond_total = torch::tensor(static_cast<double>(correct.numel()), fopts);
  if (prev_correct.defined()) {
    out.cond_total = prev_correct.sum().to(torch::kFloat);
    prev_correct.logical_and_(correct);  // the chain stays correct only if this step is
    correct = prev_correct;
  }
  if (mask.defined()) correct = correct.masked_select(mask.ne(0));
  out.full_correct = correct.sum().to(torch::kFloat);
  out.full_total = torch::tensor(static_cast<double>(correct.numel()), fopts);
  out.cond_correct = out.full_correct.clone();
  return out;
}

StepOutcome step_loss_and_metrics(const torch::Tensor& logits, const torch::Tensor& targets,
                                  const torch::Tensor& loss_mask, torch::Tensor& prev_correct, std::int64_t step,
                                  double decay_base, const nn::LossSpec& spec, std::int64_t loss_chunk_rows) {
  return step_loss_and_metrics(logits, nn::target_distribution(targets, spec), loss_mask, prev_correct, step,
                               decay_base, spec, loss_chunk_rows);
}

StepOutcome step_loss_and_metrics(const torch::Tensor& logits, const nn::TargetDistribution& targets,
                                  const torch::Tensor& loss_mask, torch::Tensor& prev_correct, std::int64_t step,
                                  double decay_base, const nn::LossSpec& spec, std::int64_t loss_chunk_rows) {
  const std::int64_t L = logits.size(0);
  const std::int64_t n = std::max<std::int64_t>(L - step, 0);
  const auto s_targets = targets.slice(std::min(step, L), L);
  const auto s_mask = loss_mask.defined() ? loss_mask.slice(0, step, L)
                                          : torch::ones({n}, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
  auto s_prev = prev_correct.slice(0, 0, n);  // a view: accuracy_step updates prev_correct itself
  // losses/utils.py: exp_loss_decay(pos = k) = γ^k.
  // Rows n..L of the logits have no target this step; they get a zero gradient.
  const auto loss =
      nn::masked_prefix_divergence(logits, s_targets, s_mask, spec, std::pow(decay_base, step), loss_chunk_rows);
  StepOutcome out;
  out.loss = loss.loss;
  const std::string k = std::to_string(step);
  MetricPairs metrics;
  metrics.add_mean("loss_" + k, loss.loss);
  for (const auto& [name, value] : loss.terms) metrics.add_mean(name + "_loss_" + k, value);
  torch::NoGradGuard no_grad;
  out.predicted = logits.argmax(-1);
  const auto counts = accuracy_step(out.predicted.slice(0, 0, n), s_targets.label, s_mask, s_prev);
  metrics.add("full_acc_" + k, counts.full_correct, counts.full_total);
  metrics.add("cond_acc_" + k, counts.cond_correct, counts.cond_total);
  out.metrics = metrics.take();
  return out;
}

}  // namespace eagle3
}  // namespace speculators
