// The `files` feature source (the reference's speculators/data_generation/offline.py):
// <data>/hidden_states/hs_{i}.safetensors holds, for data.jsonl row i, `hidden_states` [T, A+1, H]
// (bf16 or fp32: the A aux layers in id order, then the final layer) and `token_ids` [T] int64
// equal to the row's input_ids. Files are memory-mapped; only the header is parsed to learn shapes.
// A writer holds an flock on the sibling hs_{i}.safetensors.lock; readers wait for it, bounded, as
// the reference does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/bad_samples.h"
#include "data/feature_source.h"
#include "data/token_rows.h"

namespace speculators {

// <data_dir>/hidden_states/hs_<row>.safetensors
std::string hs_file_path(const std::string& data_dir, std::size_t row);

// Waits while another process holds the flock of `<path>.lock`. True when the lock is free (or
// there is no lock file), false when it is still held after `timeout_s` seconds.
bool wait_for_hs_lock(const std::string& path, double timeout_s);

// Reads one hidden-state file and checks it against its data row: both tensors present,
// hidden_states [T, slots, H] in BF16, F16 or F32 (slots and H checked when > 0), token_ids
// [T] integer and equal to the row's input_ids, and (when `check_finite`) no NaN/Inf. Returns
// hidden_states [T, slots, H] in its stored dtype. Throws Error(kData) naming file and row.
torch::Tensor read_hs_file(const std::string& path, std::size_t row_index, const TokenRow& row, std::int64_t slots,
                           std::int64_t hidden_size, bool check_finite);

class FileFeatureSource : public FeatureSource {
 public:
  // `num_aux_layers` (A) and `hidden_size` (H) are what the draft needs; the first existing
  // file is checked against them at once, since a mismatch there means the whole directory was
  // generated for other layers. Per-sample defects go to `bad`.
  FileFeatureSource(std::string data_dir, std::vector<TokenRow> rows, std::int64_t num_aux_layers,
                    std::int64_t hidden_size, std::shared_ptr<BadSampleLog> bad, double lock_timeout_s = 10.0);
  std::size_t size() const override { return rows_.size(); }
  std::int64_t length(std::size_t index) const override;
  std::vector<Sample> get(const std::vector<std::size_t>& indices) override;
  std::int64_t bad_samples() const override { return bad_->count(); }
  const std::vector<TokenRow>& rows() const { return rows_; }

  // The sample of one row; throws Error(kData) naming the file and row on any defect.
  Sample read(std::size_t index) const;

 private:
  void check_first_file() const;
  std::string data_dir_;
  std::vector<TokenRow> rows_;
  std::int64_t num_aux_layers_;
  std::int64_t hidden_size_;
  std::shared_ptr<BadSampleLog> bad_;
  double lock_timeout_s_;
};

}  // namespace speculators
