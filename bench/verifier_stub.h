// A verifier directory for a benchmark shape without a verifier's cost: config.json plus the
// three tensors a draft copies (embed_tokens, lm_head, final norm) as an all-zero sparse file.
// The draft's frozen copies are then filled with random values so that no product is trivial.
#pragma once

#include <filesystem>

#include "shapes.h"
#include "speculators/algorithm.h"
#include "speculators/json.h"

namespace speculators::bench {

// The Llama config.json of a verifier of `shape`'s widths (the stub's, and the verifier the
// --compare reference forward builds).
Json verifier_config_json(const Shape& shape);

void write_verifier_stub(const std::filesystem::path& dir, const Shape& shape);

// Fills every floating-point parameter that is not trained with N(0, 0.02) (buffers such as
// rotary tables are left alone).
void randomize_frozen_tensors(DraftModel& model);

}  // namespace speculators::bench
