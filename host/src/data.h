// The host's data path (facts §3): token rows from data.jsonl, a feature source that turns a row
// into a sample (online: the verifier runs in-process; files: hs_{i}.safetensors, see
// feature_files.h), the contiguous train/validation split, noise on the train split, the
// algorithm's preprocess, and multipack packing into one [1, L] row per rank per step.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "speculators/algorithm.h"
#include "speculators/verifier.h"

namespace speculators {

class OrderedPrefetcher;

struct TokenRow {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> loss_mask;
  std::size_t line = 0;  // 1-based line in data.jsonl (0 when the row was not read from a file)
};

// Reads <path> (one JSON object per line with input_ids and loss_mask of equal length). Errors
// name the file and line; blank lines are skipped; an empty file is an error.
std::vector<TokenRow> read_data_jsonl(const std::string& path);

// Throws a data error naming `path` and the line of the first token id outside [0, vocab_size).
void check_token_range(const std::vector<TokenRow>& rows, std::int64_t vocab_size, const std::string& path);

// What to do with a sample that cannot be used (corrupt file, wrong shape, non-finite values,
// token mismatch, no supervised token): skip it with a warning and count it, or stop the run
// with a data error (exit code 4).
enum class BadSamplePolicy { kSkip, kRaise };
BadSamplePolicy parse_bad_sample_policy(const std::string& text);

// Shared by the sources and the loaders of one run; safe to call from several threads.
class BadSampleLog {
 public:
  explicit BadSampleLog(BadSamplePolicy policy = BadSamplePolicy::kSkip) : policy_(policy) {}
  // kRaise: throws Error(kData) with `message`. kSkip: counts it and warns (the first
  // kMaxWarnings messages; later ones are only counted).
  void report(const std::string& message);
  std::int64_t count() const { return count_.load(); }
  BadSamplePolicy policy() const { return policy_; }
  static constexpr std::int64_t kMaxWarnings = 20;

 private:
  BadSamplePolicy policy_;
  std::atomic<std::int64_t> count_{0};
  std::mutex mutex_;
};

// The indices of rows that have at least one supervised token (loss_mask 1); the others are
// reported to `bad` with the file and line (the reference drops them in prepare_data, §3.2).
std::vector<std::size_t> keep_supervised_rows(const std::vector<TokenRow>& rows,
                                              const std::vector<std::size_t>& indices, BadSampleLog& bad,
                                              const std::string& path);

// Turns rows into samples (facts §3.5: hidden_states [T, A*H], verifier_last_hidden_states [T, H],
// input_ids, loss_mask, position_ids [T]). get() may be called from several threads at once.
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

// facts §3.5 from a row and its [T, A+1, H] features: hidden_states = first A slots flattened,
// verifier_last_hidden_states = the last slot (float32), ids/mask/positions int64.
Sample sample_from_features(const TokenRow& row, const torch::Tensor& features);

// Runs the verifier on the rows (several rows packed into one causal, document-masked forward)
// and keeps up to `cache_bytes` of features in memory so later epochs skip the verifier.
// get() is serialised: the verifier and the cache are shared.
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
  std::mutex mutex_;
};

// Contiguous split (facts §3.8): rows [0, floor(N*r)) train, the rest validation.
std::pair<std::vector<std::size_t>, std::vector<std::size_t>> split_rows(std::size_t n, double train_ratio);

// Packs samples back to back into [1, L] tensors (facts §3.7 collate): the last sample may be
// cut, later ones dropped; document_ids = sample index on covered positions, -1 on padding;
// padding is 0 for every key.
Batch collate(const std::vector<Sample>& samples, std::int64_t total_len);

// The packed rows of one rank for one epoch (facts §3.7, multipack): the indices are shuffled
// from seed + epoch, then repeatedly the longest prefix that LPT fits into `world_size` bins
// of `total_len` tokens (lengths clipped to total_len) becomes one step, and this rank takes
// bin (rank - step) mod world_size. Stops when fewer than world_size rows remain, so every rank
// gets the same number of steps.
std::vector<std::vector<std::size_t>> pack_rows(const std::vector<std::size_t>& indices,
                                                const std::vector<std::int64_t>& lengths,
                                                std::int64_t total_len, std::uint64_t seed, std::int64_t epoch,
                                                int rank = 0, int world_size = 1);

// The rest of an epoch that `old_world_size` ranks had trained `steps_done` steps of, packed
// for `world_size` ranks: the samples of those steps (all ranks' bins) are the first ones of the
// epoch's shuffled order, and packing goes on from the next one, numbering steps from
// `first_step` (for the bin rotation). With the same world size this equals pack_rows from
// step `steps_done` on.
std::vector<std::vector<std::size_t>> pack_rows_resharded(const std::vector<std::size_t>& indices,
                                                          const std::vector<std::int64_t>& lengths,
                                                          std::int64_t total_len, std::uint64_t seed,
                                                          std::int64_t epoch, std::size_t steps_done,
                                                          int old_world_size, std::size_t first_step, int rank,
                                                          int world_size);

struct LoaderOptions {
  // Background threads building batches (read, noise, preprocess, collate). 0 builds each batch
  // in next() on the caller's thread.
  int num_workers = 0;
  // Batches in flight per worker (the queue holds num_workers x prefetch_factor batches).
  int prefetch_factor = 2;
  int rank = 0;
  int world_size = 1;
};

// Yields the packed batches of one split, epoch by epoch.
class Loader {
 public:
  Loader(FeatureSource& source, const Algorithm& algorithm, std::vector<std::size_t> indices,
         std::int64_t total_len, double noise_std, std::uint64_t seed, bool train, LoaderOptions options = {});
  ~Loader();
  // Starts `epoch` at packed row `skip` (a resumed run skips the rows it already trained on).
  // Every batch is a function of (seed, epoch, its index) alone, with or without workers, so a
  // resumed epoch yields the same batches as an uninterrupted one.
  void start_epoch(std::int64_t epoch, std::size_t skip = 0);
  // Starts `epoch` where a run with `old_world_size` ranks stopped after `rows_done` packed rows
  // per rank (pack_rows_resharded): position() becomes rows_done x old / new world size, and the
  // rows from there are the rest of the epoch's samples packed for this world size.
  void start_epoch_resharded(std::int64_t epoch, std::size_t rows_done, int old_world_size);
  std::size_t num_batches() const { return plan_.size(); }
  // Index of the next batch next() will yield within this epoch.
  std::size_t position() const { return cursor_; }
  // The next batch of this epoch, or nullopt at its end. An error while building a batch (also
  // in a worker) is thrown here.
  std::optional<Batch> next();
  bool empty() const { return indices_.empty(); }
  std::int64_t dropped_samples() const { return dropped_.load(); }

 private:
  // Batch `index` of the current epoch, or nullopt when every sample of it was dropped.
  std::optional<Batch> make_batch(std::int64_t epoch, std::size_t index);
  void report_epoch_end();

  FeatureSource& source_;
  const Algorithm& algorithm_;
  std::vector<std::size_t> indices_;
  std::vector<std::int64_t> lengths_;
  std::int64_t total_len_;
  double noise_std_;
  std::uint64_t seed_;
  bool train_;
  LoaderOptions options_;
  std::int64_t epoch_ = 0;
  std::vector<std::vector<std::size_t>> plan_;
  std::size_t cursor_ = 0;
  std::atomic<std::int64_t> dropped_{0};
  std::int64_t bad_at_epoch_start_ = 0;
  bool epoch_reported_ = false;
  bool prefetch_started_ = false;
  std::unique_ptr<OrderedPrefetcher> prefetcher_;
};

}  // namespace speculators
