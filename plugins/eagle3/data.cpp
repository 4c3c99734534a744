// shift_batch (speculators/models/eagle3/data.py: shift_batch).
#include "data.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace eagle3 {
namespace {

const torch::Tensor& require(const Sample& sample, const char* key) {
  const auto it = sample.tensors.find(key);
  if (it == sample.tensors.end() || !it->second.defined()) {
    fail_data(cat("eagle3 shift_batch: the sample has no '", key, "' tensor"));
  }
  return it->second;
}

}  // namespace

std::optional<Sample> shift_batch(const Sample& sample) {
  const auto& input_ids = require(sample, "input_ids");
  const auto& hidden = require(sample, "hidden_states");
  const auto& last = require(sample, "verifier_last_hidden_states");
  const auto& loss_mask = require(sample, "loss_mask");
  const auto& positions = require(sample, "position_ids");
  const std::int64_t T = input_ids.size(0);
  for (const auto* t : {&hidden, &last, &loss_mask}) {
    if (t->dim() < 1 || t->size(0) != T) {
      fail_data(cat("eagle3 shift_batch: tensors disagree on the sample length ", T, " (got a tensor of shape ",
                    t->sizes(), ")"));
    }
  }
  // MRoPE samples carry position_ids [3, T]: shift along the last (sequence) axis.
  if (positions.size(-1) != T) {
    fail_data(cat("eagle3 shift_batch: position_ids ", positions.sizes(), " do not cover ", T, " tokens"));
  }
  if (T < 2) return std::nullopt;
  Sample out;
  out.tensors["input_ids"] = input_ids.slice(0, 1, T);
  out.tensors["hidden_states"] = hidden.slice(0, 0, T - 1);
  out.tensors["verifier_last_hidden_states"] = last.slice(0, 1, T);
  out.tensors["loss_mask"] = loss_mask.slice(0, 1, T);
  out.tensors["position_ids"] = positions.slice(-1, 1, T);
  return out;
}

}  // namespace eagle3
}  // namespace speculators
