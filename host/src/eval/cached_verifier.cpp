// See cached_verifier.h.
#include "eval/cached_verifier.h"

#include <algorithm>
#include <map>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

CachedVerifier::CachedVerifier(VerifierModelImpl& verifier, std::vector<std::int64_t> layer_ids)
    : verifier_(verifier),
      layer_ids_(std::move(layer_ids)),
      rope_(verifier.config()),
      caches_(static_cast<std::size_t>(verifier.config().num_hidden_layers)) {
  const std::string& family = verifier.config().model_type;
  if (family == "llama4_text" || family == "gpt_oss") {
    // Their layers (chunked attention, sinks, their own experts) run only in VerifierModelImpl::forward.
    fail_usage(cat("decoding with a KV cache is not implemented for a ", family,
                   " verifier; valid: llama, mistral, qwen2, qwen3, qwen3_moe"));
  }
  const std::int64_t n = verifier.config().num_hidden_layers;
  for (auto id : layer_ids_) {
    if (id < 0 || id > n) {
      fail_usage(cat("verifier layer id ", id, " is out of range; valid ids are 0..", n,
                     " (k = residual stream after k decoder layers)"));
    }
  }
}

CachedVerifier::Output CachedVerifier::step(const torch::Tensor& tokens, bool last_logits_only) {
  if (tokens.dim() != 2 || tokens.size(1) < 1) fail(cat("cached verifier: tokens must be [B, S], got ", tokens.sizes()));
  const std::int64_t b = tokens.size(0), s = tokens.size(1), start = length();
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(tokens.device());
  const torch::Tensor query_pos = torch::arange(start, start + s, longs);
  torch::Tensor h = verifier_.embed_tokens(tokens);
  const nn::RotaryTables rope = rope_.tables(query_pos.unsqueeze(0).expand({b, s}), h.scalar_type());
  std::map<std::int64_t, torch::Tensor> captured;
  auto capture = [&](std::int64_t id) {
    if (std::find(layer_ids_.begin(), layer_ids_.end(), id) != layer_ids_.end()) captured[id] = h;
  };
  for (std::size_t i = 0; i < caches_.size(); ++i) {
    capture(static_cast<std::int64_t>(i));  // id i = input of layer i
    const auto window = verifier_.config().window_of_layer(static_cast<std::int64_t>(i));
    const nn::AttentionKernel kernel = [this, i, window](const torch::Tensor& q, const torch::Tensor& k,
                                                         const torch::Tensor& v) {
      return nn::attend_with_cache(caches_[i], q, k, v, window);
    };
    h = verifier_.layers->ptr<nn::DecoderLayerImpl>(i)->forward(h, rope, kernel);
  }
  capture(static_cast<std::int64_t>(caches_.size()));  // id n: final decoder output, before the norm
  Output out;
  out.logits = last_logits_only ? verifier_.lm_head(verifier_.norm(h.select(1, s - 1)))
                                : verifier_.lm_head(verifier_.norm(h));
  for (auto id : layer_ids_) out.hidden_states.push_back(captured.at(id));
  return out;
}

void CachedVerifier::truncate(std::int64_t length) {
  for (auto& cache : caches_) cache.truncate(length);
}

}  // namespace speculators
