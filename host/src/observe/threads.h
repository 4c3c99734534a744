// CPU threads for LibTorch's intra-op parallelism. OpenMP's own default can be a single thread
// (it depends on the runtime and the environment), so the host sets the count explicitly.
#pragma once

namespace speculators {

// The CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

// Sets LibTorch's intra-op threads to `requested`, or to available_cpus() when requested <= 0,
// unless OMP_NUM_THREADS is set (then the environment wins). Returns the count in effect.
int apply_num_threads(int requested);

}  // namespace speculators
