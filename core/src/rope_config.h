// Reading the rotary parameters of a Hugging Face config.json in both spellings: transformers 4's
// `rope_theta` + `rope_scaling` and transformers 5's `rope_parameters`, resolved as
// transformers/modeling_rope_utils.py: RotaryEmbeddingConfigMixin.convert_rope_params_to_dict and
// standardize_rope_params do. A key that is not part of the rope type's parameter set is an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "speculators/json.h"
#include "speculators/nn/transformer_config.h"

namespace speculators {

struct RopeSettings {
  double theta = 10000.0;
  std::optional<RopeScaling> scaling;  // nullopt: plain rotary with `theta`
};

// `cfg` is the decoder's config object; `max_position_embeddings` and `head_dim` are already read.
// `default_theta` is the family's theta when the config names none (10000; llama4_text 500000).
RopeSettings read_rope_settings(const Json& cfg, std::int64_t max_position_embeddings, std::int64_t head_dim,
                                const std::string& where, double default_theta = 10000.0);

}  // namespace speculators
