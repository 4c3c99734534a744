// The Loader: one split's packed batches, epoch by epoch, built on the caller's thread or ahead
// in background workers, resumable mid-epoch (also on another world size).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "data/feature_source.h"
#include "speculators/algorithm.h"

namespace speculators {

class OrderedPrefetcher;

struct LoaderOptions {
  // Background threads building batches (read, noise, preprocess, collate). 0 builds each batch
  // in next() on the caller's thread.
  int num_workers = 0;
  // Batches in flight per worker (the queue holds num_workers x prefetch_factor batches).
  int prefetch_factor = 2;
  int rank = 0;
  int world_size = 1;
  // Build batches in page-locked host memory, so a copy to a CUDA device does not block the host
  // (only with a CUDA device: pinning needs the CUDA runtime).
  bool pin_memory = false;
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

// Stops a run whose training split packs into no batch at all (too few rows for --train-data-ratio,
// every row without a supervised token, fewer rows than ranks): exit code 4 naming data.jsonl and
// the counts, before anything is trained or saved, rather than a checkpoint of untrained weights.
void require_training_batches(const Loader& train, const std::string& jsonl, std::size_t rows,
                              std::size_t train_rows, double train_data_ratio, int world_size);

}  // namespace speculators
