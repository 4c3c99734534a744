// Metric reduction (the reference's speculators/train/trainer.py: _all_reduce_metrics):
// `name_sum`/`name_total` pairs become name = Σsum/Σtotal; plain scalars are averaged over the
// batches added. The loss must be present in one form.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {

class MetricAccumulator {
 public:
  // Adds one batch's metrics; throws Error(kPlugin) when the key set changes between batches.
  // The sums stay on the metrics' device (fp64) until a reader below needs them: a step on a GPU
  // reads its metrics once, at a log step, not once per batch.
  void add(const TensorMap& metrics);
  // Normalised values by name (pairs merged, scalars averaged).
  std::map<std::string, double> values() const;
  bool empty() const { return batches_ == 0; }
  // The sums in key order, then the batch count: what ranks add up before values().
  std::vector<double> raw() const;
  // Puts back what raw() gave, summed over ranks (same keys, same order).
  void load_raw(const std::vector<double>& raw);
  std::size_t num_keys() const { return keys_.size(); }
  void clear();

 private:
  // Adds the device sums into sums_ (one host read per key).
  void settle() const;
  std::set<std::string> keys_;
  mutable std::map<std::string, torch::Tensor> pending_;
  mutable std::map<std::string, double> sums_;
  long batches_ = 0;
};

// The metric-key rule: every batch of one phase ("training" or "validation") returns the same set
// of metric keys, on every rank; the first batch fixes the set. A single process checks each batch
// against it (check); ranks then compare fingerprints of their sets (the trainer's reduction), so
// one rank and many refuse the same plugins with the same rule.
class MetricKeyContract {
 public:
  explicit MetricKeyContract(std::string phase) : phase_(std::move(phase)) {}
  // Throws Error(kPlugin) naming the algorithm, the phase and both key sets when `metrics`
  // differs from the first batch's keys.
  void check(const TensorMap& metrics, const std::string& algorithm);
  // The key set as a number that ranks compare (0 before the first batch).
  double fingerprint() const;
  // The rule, for error messages.
  static const char* rule();
  const std::string& phase() const { return phase_; }

 private:
  std::string phase_;
  bool fixed_ = false;
  std::vector<std::string> keys_;
};

// Checks a forward result once: loss defined and scalar; metrics 0-d; the loss present as
// loss_sum/loss_total or loss. Throws Error(kPlugin) naming the algorithm.
void check_forward_result(const ForwardResult& result, const std::string& algorithm);

// 1 + Σ_k full_acc_k over the metrics named full_acc_<k> (0 when there are none).
double estimated_acceptance_length(const std::map<std::string, double>& values);

}  // namespace speculators
