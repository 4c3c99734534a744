// Draft checkpoints in the reference layout (speculators/train/checkpointer.py,
// docs/compatibility.md): config.json in the reference's
// byte format and model.safetensors with every floating tensor in bf16 (d2t int64, t2d bool),
// without the keys the model asks to ignore. Loading is the reverse, non-strict only for the
// keys the model allows to be missing.
#pragma once

#include <string>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {

// The tensors that go into model.safetensors: parameters and buffers by their module path,
// minus keys_to_ignore_on_save(), floating tensors cast to `float_dtype`.
TensorMap draft_state_for_save(DraftModel& model, torch::ScalarType float_dtype = torch::kBFloat16);

// Writes DIR/config.json and DIR/model.safetensors (creating DIR). Each file is written
// atomically; an existing checkpoint in DIR is replaced file by file.
void save_draft(DraftModel& model, const std::string& dir);

// Loads DIR/model.safetensors into `model` (dtype converted to the parameter's). Missing keys
// other than keys_allowed_missing_on_load(), unexpected keys and shape mismatches throw Error
// naming the file and tensor. Returns the keys that were missing.
std::vector<std::string> load_draft_weights(DraftModel& model, const std::string& dir);

}  // namespace speculators
