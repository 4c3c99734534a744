// speculators-bench --compare reference, the verifier's part: this project's verifier forward
// (core/include/speculators/verifier.h, as the online feature source runs it: logits and the aux
// hidden states, no gradient) against transformers' own model of the same family, config and
// weights on the same tokens, timed by bench/verifier_forward.py in the test venv's Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "reference_compare.h"
#include "shapes.h"
#include "speculators/json.h"

namespace speculators::bench {

// Builds a Llama verifier of `shape`'s widths with random weights in `dir`, times its forward on
// one batch of documents (shape.seq_len tokens as rows of shape.doc_len), returning the hidden
// states after `layer_ids` (the draft's target layers), here and in transformers, and returns both
// timings: {"this_s", "this_s_samples", "transformers": {...}, "speedup"}.
Json run_verifier_compare(const Shape& shape, const std::vector<std::int64_t>& layer_ids,
                          const ReferenceOptions& options, const std::filesystem::path& dir);

}  // namespace speculators::bench
