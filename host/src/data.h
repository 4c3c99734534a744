// The host's data path (facts §3): token rows from data.jsonl, a feature source that turns a row
// into a sample (online: the verifier runs in-process), the contiguous train/validation split,
// noise on the train split, the algorithm's preprocess, and packing into one [1, L] row per step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/verifier.h"

namespace speculators {

struct TokenRow {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> loss_mask;
};

// Reads <path> (one JSON object per line with input_ids and loss_mask of equal length). Errors
// name the file and line; blank lines are skipped; an empty file is an error.
std::vector<TokenRow> read_data_jsonl(const std::string& path);

// Turns rows into samples (facts §3.5: hidden_states [T, A*H], verifier_last_hidden_states [T, H],
// input_ids, loss_mask, position_ids [T]).
class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual std::size_t size() const = 0;
  virtual std::int64_t length(std::size_t index) const = 0;
  // Samples for several rows at once (lets the online source batch its verifier calls).
  virtual std::vector<Sample> get(const std::vector<std::size_t>& indices) = 0;
};

// Runs the verifier on the rows (several rows packed into one causal, document-masked forward)
// and keeps up to `cache_bytes` of features in memory so later epochs skip the verifier.
class OnlineFeatureSource : public FeatureSource {
 public:
  OnlineFeatureSource(VerifierModel verifier, std::vector<TokenRow> rows, std::vector<std::int64_t> aux_layer_ids,
                      std::size_t cache_bytes, std::int64_t max_tokens_per_call);
  std::size_t size() const override { return rows_.size(); }
  std::int64_t length(std::size_t index) const override;
  std::vector<Sample> get(const std::vector<std::size_t>& indices) override;
  const std::vector<TokenRow>& rows() const { return rows_; }

 private:
  void compute(const std::vector<std::size_t>& indices);
  VerifierModel verifier_;
  std::vector<TokenRow> rows_;
  std::vector<std::int64_t> layer_ids_;  // aux ids + the final layer
  std::size_t cache_bytes_;
  std::size_t cached_bytes_ = 0;
  std::int64_t max_tokens_per_call_;
  std::map<std::size_t, Sample> cache_;
  std::map<std::size_t, Sample> pending_;  // computed but over the cache budget
};

// Contiguous split (facts §3.8): rows [0, floor(N*r)) train, the rest validation.
std::pair<std::vector<std::size_t>, std::vector<std::size_t>> split_rows(std::size_t n, double train_ratio);

// Packs samples back to back into [1, L] tensors (facts §3.7 collate): the last sample may be
// cut, later ones dropped; document_ids = sample index on covered positions, -1 on padding;
// padding is 0 for every key.
Batch collate(const std::vector<Sample>& samples, std::int64_t total_len);

// Groups row indices into packed rows of at most `total_len` tokens: the order is shuffled from
// seed + epoch, then filled first-fit; a row longer than total_len gets a row of its own.
std::vector<std::vector<std::size_t>> pack_rows(const std::vector<std::size_t>& indices,
                                                const std::vector<std::int64_t>& lengths,
                                                std::int64_t total_len, std::uint64_t seed, std::int64_t epoch);

// Yields the packed batches of one split, epoch by epoch.
class Loader {
 public:
  Loader(FeatureSource& source, const Algorithm& algorithm, std::vector<std::size_t> indices,
         std::int64_t total_len, double noise_std, std::uint64_t seed, bool train);
  // Starts `epoch` at packed row `skip` (a resumed run skips the rows it already trained on).
  // Every batch is a function of (seed, epoch, its index) alone, so a resumed epoch yields the
  // same batches as an uninterrupted one.
  void start_epoch(std::int64_t epoch, std::size_t skip = 0);
  std::size_t num_batches() const { return plan_.size(); }
  // Index of the next batch next() will yield within this epoch.
  std::size_t position() const { return cursor_; }
  // The next batch of this epoch, or nullopt at its end.
  std::optional<Batch> next();
  bool empty() const { return indices_.empty(); }
  std::int64_t dropped_samples() const { return dropped_; }

 private:
  FeatureSource& source_;
  const Algorithm& algorithm_;
  std::vector<std::size_t> indices_;
  std::vector<std::int64_t> lengths_;
  std::int64_t total_len_;
  double noise_std_;
  std::uint64_t seed_;
  bool train_;
  std::int64_t epoch_ = 0;
  std::vector<std::vector<std::size_t>> plan_;
  std::size_t cursor_ = 0;
  std::int64_t dropped_ = 0;
  torch::Generator noise_gen_;
};

}  // namespace speculators
