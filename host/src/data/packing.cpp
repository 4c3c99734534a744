// Multipack packing of rows into [1, L] steps (speculators/train/distributed_batch_sampler.py:
// MultipackDistributedBatchSamplerV2): a per-epoch shuffle from seed + epoch, then greedy prefixes
// that LPT fits into one bin of L tokens per rank. The shuffle is our own Fisher-Yates over
// mt19937_64 (numpy's PCG64 stream is not reproduced), so the order differs from the reference but
// is the same on every platform.
#include "data/packing.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

std::vector<std::size_t> shuffled(std::vector<std::size_t> order, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = order.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

// LPT (longest first, each into the least-filled bin; ties go to the lowest bin slot). Returns
// the bin of every item, or an empty vector when some bin would exceed `capacity`.
std::vector<int> lpt(const std::vector<std::int64_t>& lens, int bins, std::int64_t capacity) {
  std::vector<std::size_t> by_len(lens.size());
  std::iota(by_len.begin(), by_len.end(), 0);
  std::stable_sort(by_len.begin(), by_len.end(), [&](std::size_t a, std::size_t b) { return lens[a] > lens[b]; });
  std::vector<std::int64_t> load(static_cast<std::size_t>(bins), 0);
  std::vector<int> bin_of(lens.size(), -1);
  for (auto item : by_len) {
    const auto slot = std::min_element(load.begin(), load.end()) - load.begin();
    load[static_cast<std::size_t>(slot)] += lens[item];
    if (load[static_cast<std::size_t>(slot)] > capacity) return {};
    bin_of[item] = static_cast<int>(slot);
  }
  return bin_of;
}

}  // namespace

namespace {

// Steps from `first` of `order` on (_assign_to_packed_batches): the longest prefix LPT fits into world_size
// bins becomes a step; `rank` takes bin (rank - step) mod world_size. `consumed` (when given)
// receives the samples in the first `max_steps` steps, all bins together.
std::vector<std::vector<std::size_t>> pack_order(const std::vector<std::size_t>& order,
                                                 const std::vector<std::int64_t>& lengths, std::int64_t total_len,
                                                 std::size_t first, std::size_t step0, int rank, int world_size,
                                                 std::size_t max_steps, std::size_t* consumed) {
  std::vector<std::int64_t> clipped(order.size());  // longer rows count as L
  for (std::size_t k = 0; k < order.size(); ++k) clipped[k] = std::min(lengths.at(order[k]), total_len);
  std::vector<std::int64_t> prefix(order.size() + 1, 0);
  std::partial_sum(clipped.begin(), clipped.end(), prefix.begin() + 1);

  std::vector<std::vector<std::size_t>> mine;
  std::size_t start = first;
  const auto capacity_all = total_len * world_size;
  for (std::size_t step = step0; order.size() - start >= static_cast<std::size_t>(world_size) &&
                                 step - step0 < max_steps;
       ++step) {
    // The longest prefix that could fit by token count bounds the search; LPT decides.
    const auto limit = std::upper_bound(prefix.begin() + static_cast<std::ptrdiff_t>(start), prefix.end(),
                                        prefix[start] + capacity_all) - prefix.begin() - 1;
    std::size_t lo = 1, hi = static_cast<std::size_t>(limit) - start;  // lo always fits (clipped)
    while (lo < hi) {
      const std::size_t mid = (lo + hi + 1) / 2;
      std::vector<std::int64_t> lens(clipped.begin() + static_cast<std::ptrdiff_t>(start),
                                     clipped.begin() + static_cast<std::ptrdiff_t>(start + mid));
      if (!lpt(lens, world_size, total_len).empty()) lo = mid; else hi = mid - 1;
    }
    if (lo < static_cast<std::size_t>(world_size)) break;  // some rank would get nothing
    std::vector<std::int64_t> lens(clipped.begin() + static_cast<std::ptrdiff_t>(start),
                                   clipped.begin() + static_cast<std::ptrdiff_t>(start + lo));
    const auto bin_of = lpt(lens, world_size, total_len);
    // Rotate which bin a rank takes so rank 0 is not always the one with the largest row.
    const int my_bin = static_cast<int>((static_cast<std::size_t>(rank) + static_cast<std::size_t>(world_size) -
                                         step % static_cast<std::size_t>(world_size)) % static_cast<std::size_t>(world_size));
    std::vector<std::size_t> batch;
    for (std::size_t k = 0; k < lo; ++k) {
      if (bin_of[k] == my_bin) batch.push_back(order[start + k]);
    }
    mine.push_back(std::move(batch));
    start += lo;
  }
  if (consumed != nullptr) *consumed = start - first;
  return mine;
}

void check_world(int rank, int world_size, std::int64_t total_len) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    fail_usage(cat("packing: rank ", rank, " is outside a world of ", world_size));
  }
  if (total_len < 1) fail_usage(cat("total_seq_len must be >= 1, got ", total_len));
}

}  // namespace

std::vector<std::vector<std::size_t>> pack_rows(const std::vector<std::size_t>& indices,
                                                const std::vector<std::int64_t>& lengths,
                                                std::int64_t total_len, std::uint64_t seed, std::int64_t epoch,
                                                int rank, int world_size) {
  check_world(rank, world_size, total_len);
  const auto order = shuffled(indices, seed + static_cast<std::uint64_t>(epoch));
  return pack_order(order, lengths, total_len, 0, 0, rank, world_size, SIZE_MAX, nullptr);
}

std::vector<std::vector<std::size_t>> pack_rows_resharded(const std::vector<std::size_t>& indices,
                                                          const std::vector<std::int64_t>& lengths,
                                                          std::int64_t total_len, std::uint64_t seed,
                                                          std::int64_t epoch, std::size_t steps_done,
                                                          int old_world_size, std::size_t first_step, int rank,
                                                          int world_size) {
  check_world(rank, world_size, total_len);
  check_world(0, old_world_size, total_len);
  const auto order = shuffled(indices, seed + static_cast<std::uint64_t>(epoch));
  std::size_t consumed = 0;
  pack_order(order, lengths, total_len, 0, 0, 0, old_world_size, steps_done, &consumed);
  return pack_order(order, lengths, total_len, consumed, first_step, rank, world_size, SIZE_MAX, nullptr);
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
