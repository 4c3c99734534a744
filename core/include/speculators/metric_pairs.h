// The metrics a DraftModel::forward returns, built as the host reads them: ratios as
// `name_sum`/`name_total` pairs of 0-d float32 tensors (the host reports Σsum / Σtotal over batches
// and ranks), the same keys in every batch. MetricPairs accumulates into a pair by name, so a
// draft with several heads or steps adds to `loss` once per head and gets one pair.
#pragma once

#include <torch/torch.h>

#include <string>

#include "speculators/algorithm.h"

namespace speculators {

class MetricPairs {
 public:
  // name_sum += sum, name_total += total. Both are detached and become 0-d float32 tensors on the
  // device of `sum`; a pair starts at 0 on first use.
  void add(const std::string& name, const torch::Tensor& sum, const torch::Tensor& total);
  // A value counted once per batch: name_sum += value, name_total += 1 (the host then reports the
  // mean over batches; the loss is reported this way, as the reference's Trainer.val_epoch does).
  void add_mean(const std::string& name, const torch::Tensor& value);
  // Counts of a boolean `correct` over the positions where `mask` is true (same shapes):
  // name_sum += Σ (correct & mask), name_total += Σ mask.
  void add_count(const std::string& name, const torch::Tensor& correct, const torch::Tensor& mask);

  // Adds every entry of `metrics` under its own key (e.g. the pairs of one step of a multi-step
  // draft): an existing key is summed, a new one is copied.
  void add_all(const TensorMap& metrics);

  const TensorMap& map() const { return metrics_; }
  // The metrics for ForwardResult::metrics; leaves this accumulator empty.
  TensorMap take();

 private:
  void accumulate(const std::string& key, const torch::Tensor& value);
  TensorMap metrics_;
};

}  // namespace speculators
