// The C library's allocator, tuned for a training loop on the CPU. LibTorch's CPU allocator takes
// every tensor from malloc, and glibc serves any block above its mmap threshold (at most 32 MiB)
// with a fresh mmap that free() unmaps again. A training step allocates and frees the same large
// tensors every step (the [L, V] logits and their gradients are 64 MiB at L 2048, V 8192), so each
// one came back as new pages that the kernel zeroes on first touch: page faults charged to whatever
// operator wrote the tensor first. docs/performance.md ("Allocator") has the measurements.
#pragma once

#include <string>

namespace speculators {

// Serves large blocks from the heap and keeps freed memory for reuse instead of returning it to the
// kernel (glibc: M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB), so a step reuses the pages of
// the one before. The environment wins: with MALLOC_MMAP_MAX_, MALLOC_TRIM_THRESHOLD_ or
// GLIBC_TUNABLES set, or SPECULATORS_MALLOC=system, nothing changes. Returns what it did, for the
// log ("heap reuse for large tensors", or why not).
std::string keep_large_allocations_on_heap();

}  // namespace speculators
