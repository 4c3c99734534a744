// A draft rebuilt from a saved checkpoint directory (as speculators/model.py:
// SpeculatorModel.from_pretrained): its config.json through the algorithm's from_config, its
// weights when present, then after_load so that the vocab mapping and the frozen verifier tensors
// are settled. Used by --from-pretrained and speculators-eval. Also the host's check of any
// draft before it is trained.
#pragma once

#include <memory>
#include <string>

#include "speculators/algorithm.h"

namespace speculators {

// <dir>/config.json of a saved draft, as the user gave it with `flag` (--from-pretrained, --draft).
// A directory without one, or a file that is not a JSON object (not JSON, nested too deep, a number
// out of range), is a usage error naming the file (exit 2, as a verifier's config.json).
Json read_draft_config_json(const std::string& dir, const std::string& flag);

// With `weights_required`, a directory without model.safetensors is a usage error; without it,
// the model keeps its fresh initialisation (logged).
std::shared_ptr<DraftModel> load_saved_draft(const Algorithm& algorithm, const Json& config, const std::string& dir,
                                             const BuildContext& ctx, bool weights_required);

// speculators/model.py: SpeculatorModel.verify_training_compatible, in the terms of this SDK: a
// non-empty layers(), an embed_tokens() and an lm_head(). Throws Error(kPlugin) naming `name`.
void check_draft_model(DraftModel& model, const std::string& name);

}  // namespace speculators
