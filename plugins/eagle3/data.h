// EAGLE-3's per-sample alignment before packing (speculators/models/eagle3/data.py:
// shift_batch): the draft sees the
// verifier's features after x_i with the next token x_{i+1}, and is scored against the
// verifier's distribution at y_{i+1}.
#pragma once

#include <optional>

#include "speculators/algorithm.h"

namespace speculators {
namespace eagle3 {

// input_ids[i] = x_{i+1}, hidden_states[i] = g_i, verifier_last_hidden_states[i] = y_{i+1},
// loss_mask[i] = l_{i+1} (the mask of the input token, kept as the
// reference has it because it changes what is trained), position_ids[i] = p_{i+1}.
// Other keys are dropped, as the reference does. A sample of fewer than two tokens covers no
// position after the shift and is dropped (nullopt).
std::optional<Sample> shift_batch(const Sample& sample);

}  // namespace eagle3
}  // namespace speculators
