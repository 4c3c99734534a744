// Feature sources: what turns a token row into a training sample (hidden states of the
// verifier's aux layers and its last layer, ids, mask, positions). The online source runs the
// verifier in-process; the file source (feature_files.h) reads hs_{i}.safetensors.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "data/token_rows.h"
#include "speculators/algorithm.h"
#include "speculators/verifier.h"

namespace speculators {

// Turns rows into samples (as speculators/train/data.py: ArrowDataset._get_raw_data: hidden_states
// [T, A*H], verifier_last_hidden_states [T, H], input_ids, loss_mask, position_ids [T]). get() may
// be called from several threads at once.
class FeatureSource {
 public:
  virtual ~FeatureSource() = default;
  virtual std::size_t size() const = 0;
  virtual std::int64_t length(std::size_t index) const = 0;
  // Samples for several rows at once (lets the online source batch its verifier calls). A
  // sample that could not be read under the skip policy comes back empty (no tensors).
  virtual std::vector<Sample> get(const std::vector<std::size_t>& indices) = 0;
  // Samples skipped so far as bad (the loader reports the count of each epoch).
  virtual std::int64_t bad_samples() const { return 0; }
};

// The verifier's features for several rows in one causal, document-masked forward (no
// cross-row attention): one float [T_r, layers, H] tensor per row, in `layer_ids` order.
std::vector<torch::Tensor> verifier_features(VerifierModelImpl& verifier, const std::vector<const TokenRow*>& rows,
                                             const std::vector<std::int64_t>& layer_ids);

// A sample from a row and its [T, A+1, H] features: hidden_states = first A slots flattened,
// verifier_last_hidden_states = the last slot (float32), ids/mask/positions int64.
Sample sample_from_features(const TokenRow& row, const torch::Tensor& features);

// Runs the verifier on the rows (several rows packed into one causal, document-masked forward)
// and keeps up to `cache_bytes` of features in memory so later epochs skip the verifier.
// get() is serialised: the verifier and the cache are shared.
class OnlineFeatureSource : public FeatureSource {
 public:
  // `max_row_tokens` (0: no limit) clips each row before the verifier runs: a packed row of
  // --total-seq-len L tokens holds at most L tokens of one sample, and a preprocess that shifts by
  // one reads one more, so the trainer passes L + 1 and a 200k-token row costs what L + 1 do.
  OnlineFeatureSource(VerifierModel verifier, std::vector<TokenRow> rows, std::vector<std::int64_t> aux_layer_ids,
                      std::size_t cache_bytes, std::int64_t max_tokens_per_call, std::int64_t max_row_tokens = 0);
  std::size_t size() const override { return rows_.size(); }
  std::int64_t length(std::size_t index) const override;
  std::vector<Sample> get(const std::vector<std::size_t>& indices) override;
  const std::vector<TokenRow>& rows() const { return rows_; }

 private:
  void compute(const std::vector<std::size_t>& indices);
  const TokenRow& verifier_row(std::size_t index, std::vector<TokenRow>& clipped) const;
  VerifierModel verifier_;
  std::vector<TokenRow> rows_;
  std::vector<std::int64_t> layer_ids_;  // aux ids + the final layer
  std::size_t cache_bytes_;
  std::size_t cached_bytes_ = 0;
  std::int64_t max_tokens_per_call_;
  std::int64_t max_row_tokens_;
  std::map<std::size_t, Sample> cache_;
  std::map<std::size_t, Sample> pending_;  // computed but over the cache budget
  std::mutex mutex_;
};

}  // namespace speculators
