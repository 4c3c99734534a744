// The host's data path: data.jsonl rows, the online feature source, split, collate, packing.
#include "data.h"

#include <nlohmann/json.hpp>

#include <algorithm>
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
  const auto vocab = verifier_->config().vocab_size;
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    for (auto t : rows_[i].input_ids) {
      if (t < 0 || t >= vocab) fail_data(cat("data row ", i, ": token id ", t, " is outside the verifier vocabulary [0, ", vocab, ")"));
    }
  }
  verifier_->eval();
  for (auto& p : verifier_->parameters()) p.set_requires_grad(false);
}

std::int64_t OnlineFeatureSource::length(std::size_t index) const {
  return static_cast<std::int64_t>(rows_.at(index).input_ids.size());
}

void OnlineFeatureSource::compute(const std::vector<std::size_t>& indices) {
  // Pack the rows into one causal, document-masked forward (no cross-row attention).
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> ids, pos, doc;
  for (std::size_t d = 0; d < indices.size(); ++d) {
    const auto& row = rows_[indices[d]];
    for (std::size_t t = 0; t < row.input_ids.size(); ++t) {
      ids.push_back(row.input_ids[t]);
      pos.push_back(static_cast<std::int64_t>(t));
      doc.push_back(static_cast<std::int64_t>(d));
    }
  }
  const auto total = static_cast<std::int64_t>(ids.size());
  auto input_ids = torch::tensor(ids, torch::kInt64).view({1, total});
  auto position_ids = torch::tensor(pos, torch::kInt64).view({1, total});
  auto document_ids = torch::tensor(doc, torch::kInt64);
  auto out = verifier_->forward(input_ids, position_ids, document_ids, layer_ids_, /*want_logits=*/false);
  std::vector<torch::Tensor> aux(out.hidden_states.begin(), out.hidden_states.end() - 1);
  auto hidden = torch::cat(aux, -1)[0];              // [total, A*H]
  auto last = out.hidden_states.back()[0];           // [total, H]
  std::int64_t offset = 0;
  for (auto index : indices) {
    const auto& row = rows_[index];
    const auto t = static_cast<std::int64_t>(row.input_ids.size());
    Sample s;
    s.tensors["hidden_states"] = hidden.narrow(0, offset, t).clone();
    s.tensors["verifier_last_hidden_states"] = last.narrow(0, offset, t).clone();
    s.tensors["input_ids"] = torch::tensor(row.input_ids, torch::kInt64);
    s.tensors["loss_mask"] = torch::tensor(row.loss_mask, torch::kInt64);
    s.tensors["position_ids"] = torch::arange(t, torch::kInt64);
    offset += t;
    std::size_t bytes = 0;
    for (const auto& [k, v] : s.tensors) bytes += v.numel() * v.element_size();
    if (cached_bytes_ + bytes <= cache_bytes_) {
      cached_bytes_ += bytes;
      cache_[index] = std::move(s);
    } else {
      pending_.emplace(index, std::move(s));
    }
  }
}

std::vector<Sample> OnlineFeatureSource::get(const std::vector<std::size_t>& indices) {
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
      out.push_back(it->second);
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

std::vector<std::vector<std::size_t>> pack_rows(const std::vector<std::size_t>& indices,
                                                const std::vector<std::int64_t>& lengths,
                                                std::int64_t total_len, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::size_t> order = indices;
  std::mt19937_64 rng(seed + static_cast<std::uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::vector<std::size_t>> bins;
  std::vector<std::int64_t> fill;
  for (auto i : order) {
    const auto len = std::min(lengths[i], total_len);
    std::size_t b = 0;
    while (b < bins.size() && fill[b] + len > total_len) ++b;
    if (b == bins.size()) {
      bins.emplace_back();
      fill.push_back(0);
    }
    bins[b].push_back(i);
    fill[b] += len;
  }
  return bins;
}

Loader::Loader(FeatureSource& source, const Algorithm& algorithm, std::vector<std::size_t> indices,
               std::int64_t total_len, double noise_std, std::uint64_t seed, bool train)
    : source_(source),
      algorithm_(algorithm),
      indices_(std::move(indices)),
      total_len_(total_len),
      noise_std_(noise_std),
      seed_(seed),
      train_(train),
      noise_gen_(at::detail::createCPUGenerator(seed)) {
  lengths_.resize(source_.size());
  for (std::size_t i = 0; i < source_.size(); ++i) lengths_[i] = source_.length(i);
  start_epoch(0);
}

void Loader::start_epoch(std::int64_t epoch, std::size_t skip) {
  epoch_ = epoch;
  plan_ = pack_rows(indices_, lengths_, total_len_, seed_, epoch);
  cursor_ = std::min(skip, plan_.size());
}

std::optional<Batch> Loader::next() {
  while (cursor_ < plan_.size()) {
    // The noise of a batch depends on (seed, epoch, batch index) only: resumable mid-epoch.
    noise_gen_.set_current_seed((seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch_)) * 1000003ULL + cursor_);
    auto samples = source_.get(plan_[cursor_++]);
    std::vector<Sample> kept;
    for (auto& s : samples) {
      if (train_ && noise_std_ > 0) {
        // facts §3.6: uniform in [-std, std) on the aux states only, train split only.
        auto& h = s.tensors.at("hidden_states");
        auto u = torch::rand(h.sizes(), noise_gen_, h.options());
        h = h + (2 * u - 1) * noise_std_;
      }
      auto processed = algorithm_.preprocess(std::move(s));
      if (processed && processed->length() > 0) {
        kept.push_back(std::move(*processed));
      } else {
        ++dropped_;
      }
    }
    if (!kept.empty()) return collate(kept, total_len_);
  }
  return std::nullopt;
}

}  // namespace speculators
