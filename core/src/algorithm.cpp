// Out-of-line parts of the algorithm contract (docs/design.md): the defaults an algorithm inherits
// when it has nothing to add, and the Sample helper.
#include "speculators/algorithm.h"

#include <algorithm>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

std::int64_t Sample::length() const {
  auto it = tensors.find("input_ids");
  if (it == tensors.end() || !it->second.defined()) fail_data("sample has no input_ids tensor");
  if (it->second.dim() < 1) fail_data(cat("sample input_ids must have at least one dimension, got a ", it->second.dim(), "-d tensor"));
  return it->second.size(0);
}

OptimizerGroup reference_optimizer_group(const std::string& name, const torch::Tensor& param) {
  // speculators/train/optimizers.py: _ADAMW_NAME_HINTS and _MATRIX_NDIM.
  static const char* const kAdamWNameHints[] = {"embed_tokens", "lm_head", "codebook", "markov_w1", "markov_w2"};
  if (!param.requires_grad() || param.dim() != 2 || std::min(param.size(0), param.size(1)) <= 1) {
    return OptimizerGroup::kAdamW;
  }
  for (const char* hint : kAdamWNameHints) {
    if (name.find(hint) != std::string::npos) return OptimizerGroup::kAdamW;
  }
  return OptimizerGroup::kMuon;
}

std::shared_ptr<DraftModel> Algorithm::from_config(const Json&, const BuildContext&) const {
  fail_usage(cat("algorithm ", name(), " does not support loading a saved checkpoint"));
}

std::pair<Json, Json> Algorithm::trainer_kwargs(const Args&) const {
  return {Json::object(), Json::object()};
}

}  // namespace speculators
