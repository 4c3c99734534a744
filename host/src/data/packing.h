// Packing rows into steps: collate (samples back to back into one [1, L] row) and the multipack
// plan that assigns rows to ranks and steps, also when a run resumes on another world size.
#pragma once

#include <cstdint>
#include <vector>

#include "speculators/algorithm.h"

namespace speculators {

// Packs samples back to back into [1, L] tensors (speculators/train/data.py: CollateFn): the last
// sample may be cut, later ones dropped; document_ids = sample index on covered positions, -1 on
// padding; padding is 0 for every key.
Batch collate(const std::vector<Sample>& samples, std::int64_t total_len);

// The packed rows of one rank for one epoch (speculators/train/distributed_batch_sampler.py:
// MultipackDistributedBatchSamplerV2): the indices are shuffled from seed + epoch, then repeatedly
// the longest prefix that LPT fits into `world_size` bins of `total_len` tokens (lengths clipped to
// total_len) becomes one step, and this rank takes bin (rank - step) mod world_size. Stops when
// fewer than world_size rows remain, so every rank gets the same number of steps.
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

}  // namespace speculators
