// The host's data path: data.jsonl rows, bad-sample accounting, verifier features and the online
// feature source, split, collate. Packing is in packing.cpp, the Loader in loader.cpp.
#include "data.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

std::vector<TokenRow> read_data_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_data(cat(path, ": cannot open (expected one JSON object per line with input_ids and loss_mask)"));
  std::vector<TokenRow> rows;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cat(path, ":", line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail_data(cat(where, ": invalid JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("input_ids")) fail_data(cat(where, ": row has no \"input_ids\""));
    TokenRow row;
    row.line = line_no;
    try {
      row.input_ids = j.at("input_ids").get<std::vector<std::int64_t>>();
      if (j.contains("loss_mask")) {
        row.loss_mask = j.at("loss_mask").get<std::vector<std::int64_t>>();
      } else {
        row.loss_mask.assign(row.input_ids.size(), 1);
      }
    } catch (const nlohmann::json::exception& e) {
      fail_data(cat(where, ": input_ids and loss_mask must be lists of integers (", e.what(), ")"));
    }
    if (row.input_ids.size() != row.loss_mask.size()) {
      fail_data(cat(where, ": input_ids has ", row.input_ids.size(), " tokens but loss_mask has ",
                    row.loss_mask.size()));
    }
    for (auto m : row.loss_mask) {
      if (m != 0 && m != 1) fail_data(cat(where, ": loss_mask values must be 0 or 1, got ", m));
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) fail_data(cat(path, ": no rows (the file is empty)"));
  return rows;
}

void check_token_range(const std::vector<TokenRow>& rows, std::int64_t vocab_size, const std::string& path) {
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (auto t : rows[i].input_ids) {
      if (t < 0 || t >= vocab_size) {
        fail_data(cat(path, ":", rows[i].line, " (row ", i, "): token id ", t,
                      " is outside the verifier vocabulary [0, ", vocab_size, ")"));
      }
    }
  }
}

BadSamplePolicy parse_bad_sample_policy(const std::string& text) {
  if (text == "skip") return BadSamplePolicy::kSkip;
  if (text == "raise") return BadSamplePolicy::kRaise;
  fail_usage(cat("on_bad_sample must be skip or raise, got \"", text, "\""));
}

void BadSampleLog::report(const std::string& message) {
  if (policy_ == BadSamplePolicy::kRaise) fail_data(cat(message, " (--on-bad-sample raise)"));
  const auto n = ++count_;
  std::lock_guard<std::mutex> lock(mutex_);
  if (n <= kMaxWarnings) {
    log::warn(cat("skipping bad sample: ", message));
    if (n == kMaxWarnings) log::warn("further bad samples are counted but not shown");
  }
}

std::vector<std::size_t> keep_supervised_rows(const std::vector<TokenRow>& rows,
                                              const std::vector<std::size_t>& indices, BadSampleLog& bad,
                                              const std::string& path) {
  std::vector<std::size_t> kept;
  for (auto i : indices) {
    const auto& mask = rows.at(i).loss_mask;
    if (std::find(mask.begin(), mask.end(), 1) != mask.end()) {
      kept.push_back(i);
    } else {
      bad.report(cat(path, ":", rows[i].line, " (row ", i, "): no supervised token (loss_mask is all 0)"));
    }
  }
  return kept;
}

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
  auto input_ids = torch::tensor(ids, torch::kInt64).view({1, total});
  auto position_ids = torch::tensor(pos, torch::kInt64).view({1, total});
  auto document_ids = torch::tensor(doc, torch::kInt64);
  auto out = verifier.forward(input_ids, position_ids, document_ids, layer_ids, /*want_logits=*/false);
  auto stacked = torch::stack(out.hidden_states, 2)[0].to(torch::kFloat32);  // [total, layers, H]
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
  // facts §3.3: hidden_states = hs[:, :-1].flatten(1), verifier_last_hidden_states = hs[:, -1].
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
                                         std::int64_t max_tokens_per_call)
    : verifier_(std::move(verifier)),
      rows_(std::move(rows)),
      layer_ids_(std::move(aux_layer_ids)),
      cache_bytes_(cache_bytes),
      max_tokens_per_call_(std::max<std::int64_t>(1, max_tokens_per_call)) {
  const auto n = verifier_->config().num_hidden_layers;
  for (auto id : layer_ids_) {
    if (id < 0 || id > n) fail_usage(cat("target layer id ", id, " is outside [0, ", n, "] for this verifier"));
  }
  layer_ids_.push_back(n);  // facts §2.2: the final layer is always appended
  check_token_range(rows_, verifier_->config().vocab_size, "data.jsonl");
  verifier_->eval();
  for (auto& p : verifier_->parameters()) p.set_requires_grad(false);
}

std::int64_t OnlineFeatureSource::length(std::size_t index) const {
  return static_cast<std::int64_t>(rows_.at(index).input_ids.size());
}

void OnlineFeatureSource::compute(const std::vector<std::size_t>& indices) {
  std::vector<const TokenRow*> rows;
  for (auto i : indices) rows.push_back(&rows_[i]);
  auto features = verifier_features(*verifier_, rows, layer_ids_);
  for (std::size_t k = 0; k < indices.size(); ++k) {
    Sample s = sample_from_features(rows_[indices[k]], features[k]);
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
    if (!group.empty() && tokens + length(i) > max_tokens_per_call_) {
      compute(group);
      group.clear();
      tokens = 0;
    }
    group.push_back(i);
    tokens += length(i);
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

std::pair<std::vector<std::size_t>, std::vector<std::size_t>> split_rows(std::size_t n, double train_ratio) {
  if (!(train_ratio > 0.0 && train_ratio <= 1.0)) {
    fail_usage(cat("train_data_ratio must be in (0, 1], got ", train_ratio));
  }
  auto n_train = static_cast<std::size_t>(std::floor(static_cast<double>(n) * train_ratio));
  std::vector<std::size_t> train(n_train), val(n - n_train);
  std::iota(train.begin(), train.end(), 0);
  std::iota(val.begin(), val.end(), n_train);
  return {train, val};
}

Batch collate(const std::vector<Sample>& samples, std::int64_t total_len) {
  Batch batch;
  if (samples.empty()) fail("collate: no samples");
  for (const auto& [key, t] : samples.front().tensors) {
    auto shape = t.sizes().vec();
    shape[0] = total_len;
    batch[key] = torch::zeros(shape, t.options());
  }
  auto doc = torch::full({total_len}, -1, torch::kInt64);
  std::int64_t offset = 0;
  for (std::size_t d = 0; d < samples.size() && offset < total_len; ++d) {
    const auto n = std::min(samples[d].length(), total_len - offset);
    if (n <= 0) continue;
    for (const auto& [key, t] : samples[d].tensors) {
      auto it = batch.find(key);
      if (it == batch.end()) fail(cat("collate: sample ", d, " has key \"", key, "\" that the first sample lacks"));
      it->second.narrow(0, offset, n).copy_(t.narrow(0, 0, n));
    }
    doc.narrow(0, offset, n).fill_(static_cast<std::int64_t>(d));
    offset += n;
  }
  for (auto& [key, t] : batch) t = t.unsqueeze(0);
  batch["document_ids"] = doc.unsqueeze(0);
  return batch;
}

}  // namespace speculators
