// A draft rebuilt from a saved checkpoint directory (as speculators/model.py:
// SpeculatorModel.from_pretrained): its config.json through the algorithm's from_config, its
// weights when present, then after_load so that the vocab mapping and the frozen verifier tensors
// are settled. Used by --from-pretrained and speculators-eval.
#pragma once

#include <memory>
#include <string>

#include "speculators/algorithm.h"

namespace speculators {

// With `weights_required`, a directory without model.safetensors is a usage error; without it,
// the model keeps its fresh initialisation (logged).
std::shared_ptr<DraftModel> load_saved_draft(const Algorithm& algorithm, const Json& config, const std::string& dir,
                                             const BuildContext& ctx, bool weights_required);

}  // namespace speculators
