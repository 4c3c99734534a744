// See feature_source.h.
#include "data/feature_source.h"

#include <algorithm>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

std::vector<torch::Tensor> verifier_features(VerifierModelImpl& verifier, const std::vector<const TokenRow*>& rows,
                                             const std::vector<std::int64_t>& layer_ids) {
  // Pack the rows into one causal, document-masked forward (no cross-row attention).
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> ids, pos, doc;
  for (std::size_t d = 0; d < rows.size(); ++d) {
    for (std::size_t t = 0; t < rows[d]->input_ids.size(); ++t) {
      ids.push_back(rows[d]->input_ids[t]);
      pos.push_back(static_cast<std::int64_t>(t));
      doc.push_back(static_cast<std::int64_t>(d));
    }
  }
  const auto total = static_cast<std::int64_t>(ids.size());
  // The verifier runs where its weights are (--device, in --hidden-states-dtype); the features
  // come back to host memory, where the cache and the loader keep them.
  const auto device = verifier.embed_tokens->weight.device();
  auto input_ids = torch::tensor(ids, torch::kInt64).view({1, total}).to(device);
  auto position_ids = torch::tensor(pos, torch::kInt64).view({1, total}).to(device);
  auto document_ids = torch::tensor(doc, torch::kInt64).to(device);
  auto out = verifier.forward(input_ids, position_ids, document_ids, layer_ids, /*want_logits=*/false);
  auto stacked = torch::stack(out.hidden_states, 2)[0].to(torch::kCPU, torch::kFloat32);  // [total, layers, H]
  std::vector<torch::Tensor> per_row;
  std::int64_t offset = 0;
  for (const auto* row : rows) {
    const auto t = static_cast<std::int64_t>(row->input_ids.size());
    per_row.push_back(stacked.narrow(0, offset, t).clone());
    offset += t;
  }
  return per_row;
}

Sample sample_from_features(const TokenRow& row, const torch::Tensor& features) {
  // hidden_states = hs[:, :-1].flatten(1), verifier_last_hidden_states = hs[:, -1].
  const auto t = features.size(0), slots = features.size(1), h = features.size(2);
  Sample s;
  s.tensors["hidden_states"] = features.narrow(1, 0, slots - 1).reshape({t, (slots - 1) * h}).to(torch::kFloat32).clone();
  s.tensors["verifier_last_hidden_states"] = features.select(1, slots - 1).to(torch::kFloat32).clone();
  s.tensors["input_ids"] = torch::tensor(row.input_ids, torch::kInt64);
  s.tensors["loss_mask"] = torch::tensor(row.loss_mask, torch::kInt64);
  s.tensors["position_ids"] = torch::arange(t, torch::kInt64);
  return s;
}

OnlineFeatureSource::OnlineFeatureSource(VerifierModel verifier, std::vector<TokenRow> rows,
                                         std::vector<std::int64_t> aux_layer_ids, std::size_t cache_bytes,
                                         std::int64_t max_tokens_per_call, std::int64_t max_row_tokens)
    : verifier_(std::move(verifier)),
      rows_(std::move(rows)),
      layer_ids_(std::move(aux_layer_ids)),
      cache_bytes_(cache_bytes),
      max_tokens_per_call_(std::max<std::int64_t>(1, max_tokens_per_call)),
      max_row_tokens_(std::max<std::int64_t>(0, max_row_tokens)) {
  const auto n = verifier_->config().num_hidden_layers;
  for (auto id : layer_ids_) {
    if (id < 0 || id > n) fail_usage(cat("target layer id ", id, " is outside [0, ", n, "] for this verifier"));
  }
  layer_ids_.push_back(n);  // the final layer is always appended
  check_token_range(rows_, verifier_->config().vocab_size, "data.jsonl");
  verifier_->eval();
  for (auto& p : verifier_->parameters()) p.set_requires_grad(false);
  if (max_row_tokens_ > 0) {
    std::size_t longer = 0, first = 0;
    for (std::size_t i = rows_.size(); i-- > 0;) {
      if (static_cast<std::int64_t>(rows_[i].input_ids.size()) > max_row_tokens_) ++longer, first = i;
    }
    if (longer > 0) {
      log::warn(cat(longer, " data row(s) are longer than a packed row (the first: data.jsonl line ", rows_[first].line,
                    ", ", rows_[first].input_ids.size(), " tokens); the verifier runs on their first ",
                    max_row_tokens_, " tokens only, the rest is never trained on"));
    }
  }
}

// The row as the verifier sees it: clipped to max_row_tokens_ when longer.
const TokenRow& OnlineFeatureSource::verifier_row(std::size_t index, std::vector<TokenRow>& clipped) const {
  const TokenRow& row = rows_[index];
  if (max_row_tokens_ == 0 || static_cast<std::int64_t>(row.input_ids.size()) <= max_row_tokens_) return row;
  TokenRow& out = clipped.emplace_back();
  const auto n = static_cast<std::ptrdiff_t>(max_row_tokens_);
  out.input_ids.assign(row.input_ids.begin(), row.input_ids.begin() + n);
  out.loss_mask.assign(row.loss_mask.begin(), row.loss_mask.begin() + std::min<std::ptrdiff_t>(n, static_cast<std::ptrdiff_t>(row.loss_mask.size())));
  out.line = row.line;
  return out;
}

std::int64_t OnlineFeatureSource::length(std::size_t index) const {
  return static_cast<std::int64_t>(rows_.at(index).input_ids.size());
}

void OnlineFeatureSource::compute(const std::vector<std::size_t>& indices) {
  std::vector<TokenRow> clipped;
  clipped.reserve(indices.size());  // verifier_row's references stay valid
  std::vector<const TokenRow*> rows;
  for (auto i : indices) rows.push_back(&verifier_row(i, clipped));
  auto features = verifier_features(*verifier_, rows, layer_ids_);
  for (std::size_t k = 0; k < indices.size(); ++k) {
    Sample s = sample_from_features(*rows[k], features[k]);
    std::size_t bytes = 0;
    for (const auto& [key, v] : s.tensors) bytes += v.numel() * v.element_size();
    if (cached_bytes_ + bytes <= cache_bytes_) {
      cached_bytes_ += bytes;
      cache_[indices[k]] = std::move(s);
    } else {
      pending_.emplace(indices[k], std::move(s));
    }
  }
}

std::vector<Sample> OnlineFeatureSource::get(const std::vector<std::size_t>& indices) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::size_t> missing;
  for (auto i : indices) {
    if (i >= rows_.size()) fail(cat("sample index ", i, " out of range (", rows_.size(), " rows)"));
    if (!cache_.count(i)) missing.push_back(i);
  }
  // One verifier call per group of rows up to max_tokens_per_call_ tokens.
  std::vector<std::size_t> group;
  std::int64_t tokens = 0;
  for (auto i : missing) {
    const std::int64_t n = max_row_tokens_ > 0 ? std::min(length(i), max_row_tokens_) : length(i);
    if (!group.empty() && tokens + n > max_tokens_per_call_) {
      compute(group);
      group.clear();
      tokens = 0;
    }
    group.push_back(i);
    tokens += n;
  }
  if (!group.empty()) compute(group);
  std::vector<Sample> out;
  out.reserve(indices.size());
  for (auto i : indices) {
    auto it = cache_.find(i);
    if (it != cache_.end()) {
      out.push_back(it->second);  // shares tensors: the loader never writes into a sample
    } else {
      out.push_back(std::move(pending_.at(i)));
      pending_.erase(i);
    }
  }
  return out;
}

}  // namespace speculators
