// The EAGLE-3 algorithm as the host sees it: its schema, checks, model
// factories, trainer call arguments and the shift_batch preprocess.
#pragma once

#include "speculators/algorithm.h"

namespace speculators {
namespace eagle3 {

class Eagle3Algorithm : public Algorithm {
 public:
  std::string name() const override { return "eagle3"; }
  std::string description() const override;
  Schema schema() const override;
  void validate(const Args& args) const override;
  std::vector<std::int64_t> target_layer_ids(const BuildContext& ctx) const override;
  std::shared_ptr<DraftModel> from_training_args(const BuildContext& ctx) const override;
  // A model from a saved config.json. When the vocab mapping is known (given for this job, or
  // the full vocabulary) the verifier tensors are loaded at once; otherwise after_load, which the
  // host calls once the checkpoint weights are in, completes the model.
  std::shared_ptr<DraftModel> from_config(const Json& config_json, const BuildContext& ctx) const override;
  std::pair<Json, Json> trainer_kwargs(const Args& args) const override;
  std::optional<Sample> preprocess(Sample sample) const override;
};

}  // namespace eagle3
}  // namespace speculators
