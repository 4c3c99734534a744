// Rotary inverse frequencies and the cos/sin scale for every rope type, computed as
// transformers/modeling_rope_utils.py does (ROPE_INIT_FUNCTIONS, in fp32): default, linear,
// dynamic (NTK, grows with the longest position of the forward), yarn, longrope (short or long
// factors by the longest position) and llama3; and the RotaryEmbedding that serves the tables.
#include <cmath>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/nn/components.h"

namespace speculators {
namespace nn {
namespace {

constexpr double kPi = 3.14159265358979323846;

// arange(0, dim, 2) / dim in fp32.
torch::Tensor exponents(std::int64_t dim) {
  return torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
}

torch::Tensor plain_inv_freq(double theta, std::int64_t dim) {
  return 1.0 / torch::pow(torch::full({}, theta, torch::kFloat), exponents(dim));
}

// _compute_llama3_parameters: long wavelengths divided by `factor`, short ones kept, a smooth
// blend between.
torch::Tensor llama3_inv_freq(const torch::Tensor& inv_freq, const RopeScaling& s) {
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  const torch::Tensor wavelen = 2.0 * kPi / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  const torch::Tensor smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const torch::Tensor smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  const torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

// _compute_dynamic_ntk_parameters with seq_len = max(seq_len, max_position_embeddings).
torch::Tensor dynamic_inv_freq(double theta, std::int64_t dim, const RopeScaling& s, std::int64_t seq_len,
                               std::int64_t max_position_embeddings) {
  const std::int64_t len = std::max(seq_len, max_position_embeddings);
  const torch::Tensor grown =
      (s.factor * torch::full({}, len, torch::kLong) / static_cast<double>(max_position_embeddings)) - (s.factor - 1.0);
  const torch::Tensor base =
      theta * torch::pow(grown, static_cast<double>(dim) / static_cast<double>(dim - 2));
  return 1.0 / torch::pow(base, exponents(dim));
}

double yarn_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// _compute_yarn_parameters.
RopeFrequencies yarn(double theta, std::int64_t dim, const RopeScaling& s) {
  double attention = 0.0;
  if (s.attention_factor) {
    attention = *s.attention_factor;
  } else if (s.mscale && s.mscale_all_dim && *s.mscale != 0.0 && *s.mscale_all_dim != 0.0) {
    attention = yarn_mscale(s.factor, *s.mscale) / yarn_mscale(s.factor, *s.mscale_all_dim);
  } else {
    attention = yarn_mscale(s.factor, 1.0);
  }
  const double original = static_cast<double>(s.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return (static_cast<double>(dim) * std::log(original / (rotations * 2.0 * kPi))) / (2.0 * std::log(theta));
  };
  double low = correction_dim(s.beta_fast);
  double high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // linear_ramp_factor's guard against a zero-width ramp

  const torch::Tensor pos_freqs = torch::pow(torch::full({}, theta, torch::kFloat), exponents(dim));
  const torch::Tensor extrapolation = 1.0 / pos_freqs;
  const torch::Tensor interpolation = 1.0 / (s.factor * pos_freqs);
  const torch::Tensor ramp = torch::clamp((torch::arange(dim / 2, torch::kFloat) - low) / (high - low), 0, 1);
  const torch::Tensor extrapolation_factor = 1 - ramp;
  const torch::Tensor inv = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  return RopeFrequencies{inv, attention};
}

// _compute_longrope_parameters.
RopeFrequencies longrope(double theta, std::int64_t dim, const RopeScaling& s, std::optional<std::int64_t> seq_len) {
  double attention = 1.0;
  if (s.attention_factor) {
    attention = *s.attention_factor;
  } else if (s.factor > 1.0) {
    attention = std::sqrt(1.0 + std::log(s.factor) / std::log(static_cast<double>(s.original_max_position_embeddings)));
  }
  const bool long_context = seq_len && *seq_len > s.original_max_position_embeddings;
  const std::vector<double>& factors = long_context ? s.long_factor : s.short_factor;
  const torch::Tensor ext = torch::tensor(factors, torch::kDouble).to(torch::kFloat);
  const torch::Tensor inv = 1.0 / (ext * torch::pow(torch::full({}, theta, torch::kFloat), exponents(dim)));
  return RopeFrequencies{inv, attention};
}

}  // namespace

RopeFrequencies rope_frequencies(const TransformerConfig& config, std::optional<std::int64_t> seq_len) {
  const std::int64_t dim = config.head_dim;
  const double theta = config.rope_theta;
  const std::string type = config.rope_scaling ? config.rope_scaling->rope_type : "default";
  if (type == "default") return RopeFrequencies{plain_inv_freq(theta, dim), 1.0};
  const RopeScaling& s = *config.rope_scaling;
  if (type == "linear") return RopeFrequencies{plain_inv_freq(theta, dim) / s.factor, 1.0};
  if (type == "llama3") return RopeFrequencies{llama3_inv_freq(plain_inv_freq(theta, dim), s), 1.0};
  if (type == "dynamic") {
    // dynamic_frequency_update: the frequencies grow only past max_position_embeddings.
    if (!seq_len || *seq_len <= config.max_position_embeddings) return RopeFrequencies{plain_inv_freq(theta, dim), 1.0};
    return RopeFrequencies{dynamic_inv_freq(theta, dim, s, *seq_len, config.max_position_embeddings), 1.0};
  }
  if (type == "yarn") return yarn(theta, dim, s);
  if (type == "longrope") return longrope(theta, dim, s, seq_len);
  fail_usage(cat("rope_type '", type, "' is not supported; valid: default, linear, dynamic, yarn, longrope, llama3"));
}

torch::Tensor rotary_inv_freq(const TransformerConfig& config) { return rope_frequencies(config, std::nullopt).inv_freq; }

RotaryEmbedding::RotaryEmbedding(const TransformerConfig& config) : config_(config) {
  const RopeFrequencies f = rope_frequencies(config, std::nullopt);
  inv_freq_ = f.inv_freq;
  attention_scaling_ = f.attention_scaling;
  const std::string type = config.rope_scaling ? config.rope_scaling->rope_type : "default";
  depends_on_length_ = type == "dynamic" || type == "longrope";
}

RotaryTables RotaryEmbedding::tables(const torch::Tensor& position_ids, torch::ScalarType dtype) const {
  torch::Tensor inv = inv_freq_;
  double scaling = attention_scaling_;
  if (depends_on_length_ && position_ids.numel() > 0) {
    // dynamic_rope_update: the longest position of this forward picks the frequencies.
    const std::int64_t seq_len = position_ids.max().item<std::int64_t>() + 1;
    const RopeFrequencies f = rope_frequencies(config_, seq_len);
    inv = f.inv_freq;
    scaling = f.attention_scaling;
  }
  inv = inv.to(position_ids.device());
  const torch::Tensor freqs = position_ids.to(torch::kFloat).unsqueeze(-1) * inv;  // [B, L, hd/2]
  const torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  if (scaling == 1.0) return RotaryTables{emb.cos().to(dtype), emb.sin().to(dtype)};
  return RotaryTables{(emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)};
}

}  // namespace nn
}  // namespace speculators
