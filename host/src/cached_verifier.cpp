// See cached_verifier.h.
#include "cached_verifier.h"

#include <algorithm>
#include <map>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

CachedVerifier::CachedVerifier(VerifierModelImpl& verifier, std::vector<std::int64_t> layer_ids)
    : verifier_(verifier),
      layer_ids_(std::move(layer_ids)),
      rope_(verifier.config()),
      keys_(static_cast<std::size_t>(verifier.config().num_hidden_layers)),
      values_(keys_.size()) {
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
  const std::int64_t b = tokens.size(0), s = tokens.size(1);
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(tokens.device());
  const torch::Tensor query_pos = torch::arange(length_, length_ + s, longs);
  const torch::Tensor key_pos = torch::arange(length_ + s, longs);
  torch::Tensor h = verifier_.embed_tokens(tokens);
  const nn::RotaryTables rope = rope_.tables(query_pos.unsqueeze(0).expand({b, s}), h.scalar_type());
  std::map<std::int64_t, torch::Tensor> captured;
  auto capture = [&](std::int64_t id) {
    if (std::find(layer_ids_.begin(), layer_ids_.end(), id) != layer_ids_.end()) captured[id] = h;
  };
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    capture(static_cast<std::int64_t>(i));  // facts §2.2: id i = input of layer i
    torch::Tensor allowed = key_pos.unsqueeze(0) <= query_pos.unsqueeze(1);
    if (auto window = verifier_.config().window_of_layer(static_cast<std::int64_t>(i))) {
      allowed = allowed.logical_and(key_pos.unsqueeze(0) > query_pos.unsqueeze(1) - *window);
    }
    const nn::AttentionKernel kernel = [this, i, &allowed](const torch::Tensor& q, const torch::Tensor& k,
                                                           const torch::Tensor& v) {
      keys_[i] = keys_[i].defined() ? torch::cat({keys_[i], k}, 2) : k;
      values_[i] = values_[i].defined() ? torch::cat({values_[i], v}, 2) : v;
      return nn::dense_attention(q, keys_[i], values_[i], allowed);
    };
    h = verifier_.layers->ptr<nn::DecoderLayerImpl>(i)->forward(h, rope, kernel);
  }
  capture(static_cast<std::int64_t>(keys_.size()));  // id n: final decoder output, before the norm
  length_ += s;
  Output out;
  out.logits = last_logits_only ? verifier_.lm_head(verifier_.norm(h.select(1, s - 1)))
                                : verifier_.lm_head(verifier_.norm(h));
  for (auto id : layer_ids_) out.hidden_states.push_back(captured.at(id));
  return out;
}

void CachedVerifier::truncate(std::int64_t length) {
  if (length < 0 || length > length_) fail(cat("cached verifier: cannot truncate ", length_, " positions to ", length));
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].defined()) {
      keys_[i] = keys_[i].narrow(2, 0, length);
      values_[i] = values_[i].narrow(2, 0, length);
    }
  }
  length_ = length;
}

}  // namespace speculators
