// The Loader: one split's packed batches, epoch by epoch (docs/data.md, "Split, noise, packing"):
// per packed row the samples are read, the train split gets uniform noise on its aux states, the
// algorithm's preprocess runs per sample and the survivors are collated into [1, L]. With workers
// the rows are built ahead in background threads (prefetch.h) and handed out in order.
#include "data/loader.h"

#include <algorithm>

#include "data/feature_source.h"
#include "data/packing.h"
#include "data/prefetch.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

Loader::Loader(FeatureSource& source, const Algorithm& algorithm, std::vector<std::size_t> indices,
               std::int64_t total_len, double noise_std, std::uint64_t seed, bool train, LoaderOptions options)
    : source_(source),
      algorithm_(algorithm),
      indices_(std::move(indices)),
      total_len_(total_len),
      noise_std_(noise_std),
      seed_(seed),
      train_(train),
      options_(options) {
  if (options_.num_workers < 0) fail_usage(cat("num_workers must be >= 0, got ", options_.num_workers));
  if (options_.prefetch_factor < 1) fail_usage(cat("prefetch_factor must be >= 1, got ", options_.prefetch_factor));
  lengths_.resize(source_.size());
  for (std::size_t i = 0; i < source_.size(); ++i) lengths_[i] = source_.length(i);
  if (options_.num_workers > 0) {
    prefetcher_ = std::make_unique<OrderedPrefetcher>(
        options_.num_workers, static_cast<std::size_t>(options_.num_workers * options_.prefetch_factor));
  }
  start_epoch(0);
}

Loader::~Loader() = default;

void Loader::start_epoch(std::int64_t epoch, std::size_t skip) {
  if (prefetcher_) prefetcher_->cancel();  // nothing may read plan_ while it changes
  epoch_ = epoch;
  plan_ = pack_rows(indices_, lengths_, total_len_, seed_, epoch, options_.rank, options_.world_size);
  cursor_ = std::min(skip, plan_.size());
  bad_at_epoch_start_ = source_.bad_samples();
  epoch_reported_ = false;
  prefetch_started_ = false;  // workers start at the first next(): an idle split costs nothing
}

void Loader::start_epoch_resharded(std::int64_t epoch, std::size_t rows_done, int old_world_size) {
  start_epoch(epoch, 0);
  const std::size_t first = rows_done * static_cast<std::size_t>(old_world_size) /
                            static_cast<std::size_t>(options_.world_size);
  auto rest = pack_rows_resharded(indices_, lengths_, total_len_, seed_, epoch, rows_done, old_world_size, first,
                                  options_.rank, options_.world_size);
  plan_.assign(first, {});  // rows already trained on: never built
  plan_.insert(plan_.end(), rest.begin(), rest.end());
  cursor_ = first;
}

std::optional<Batch> Loader::make_batch(std::int64_t epoch, std::size_t index) {
  auto samples = source_.get(plan_[index]);
  std::vector<Sample> kept;
  for (std::size_t j = 0; j < samples.size(); ++j) {
    auto& s = samples[j];
    if (s.tensors.empty()) continue;  // a bad sample the source skipped (and counted)
    if (train_ && noise_std_ > 0) {
      // The noise of a sample depends on (seed, epoch, sample) only: the same whichever batch,
      // rank, world size or thread it lands in, so a resumed run (at any world size) sees it too.
      auto noise_gen = at::detail::createCPUGenerator(
          (seed_ * 1000003ULL + static_cast<std::uint64_t>(epoch)) * 1000003ULL + plan_[index][j]);
      // Uniform in [-std, std) on the aux states only, train split only.
      auto& h = s.tensors.at("hidden_states");
      auto u = torch::rand(h.sizes(), noise_gen, h.options());
      h = h + (2 * u - 1) * noise_std_;
    }
    auto processed = algorithm_.preprocess(std::move(s));
    if (processed && processed->length() > 0) {
      kept.push_back(std::move(*processed));
    } else {
      ++dropped_;
    }
  }
  if (kept.empty()) return std::nullopt;
  Batch batch = collate(kept, total_len_);
  if (options_.pin_memory) {
    for (auto& [key, t] : batch) t = t.pin_memory();
  }
  return batch;
}

void Loader::report_epoch_end() {
  if (epoch_reported_) return;
  epoch_reported_ = true;
  const auto bad = source_.bad_samples() - bad_at_epoch_start_;
  if (bad > 0) {
    log::warn(cat(train_ ? "train" : "validation", " epoch ", epoch_, ": skipped ", bad,
                  " bad samples (see the warnings above; --on-bad-sample raise stops at the first)"));
  }
}

std::optional<Batch> Loader::next() {
  if (prefetcher_ && !prefetch_started_) {
    prefetch_started_ = true;
    const auto epoch = epoch_;
    prefetcher_->start([this, epoch](std::size_t index) { return make_batch(epoch, index); }, cursor_, plan_.size());
  }
  while (cursor_ < plan_.size()) {
    const std::size_t index = cursor_++;
    auto batch = prefetcher_ ? prefetcher_->take() : make_batch(epoch_, index);
    if (batch) return batch;
  }
  report_epoch_end();
  return std::nullopt;
}

void require_training_batches(const Loader& train, const std::string& jsonl, std::size_t rows,
                              std::size_t train_rows, double train_data_ratio, int world_size) {
  if (train.num_batches() > 0) return;
  fail_data(cat(jsonl, ": nothing to train on: ", rows, " row(s), ", train_rows,
                " in the training split with a supervised token (--train-data-ratio ", train_data_ratio, ")",
                world_size > 1 ? cat(", and each of the ", world_size, " ranks needs at least one") : std::string(),
                "; add rows or raise --train-data-ratio"));
}

}  // namespace speculators
