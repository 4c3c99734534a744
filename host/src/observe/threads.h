// CPU threads for LibTorch's intra-op parallelism and for the BLAS library under it. OpenMP's own
// default can be a single thread (it depends on the runtime and the environment), so the host sets
// the count explicitly. OpenBLAS built with pthreads (Debian's libtorch links it) keeps its own
// thread pool, sized to the machine whatever LibTorch's setting is; the host sizes that pool too,
// through OpenBLAS's own openblas_set_num_threads looked up at run time (no link dependency: with
// another BLAS, or MKL, whose threads LibTorch already sets, this part does nothing).
#pragma once

namespace speculators {

// The CPUs this process may run on (its affinity mask), at least 1.
int available_cpus();

// Sets LibTorch's intra-op threads to `requested`, or to available_cpus() when requested <= 0,
// unless OMP_NUM_THREADS is set (then the environment wins). Then sizes OpenBLAS's pool: to
// `blas_requested` when > 0, else (unless OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS is set) by
// default_blas_threads(). Returns LibTorch's count in effect.
int apply_num_threads(int requested, int blas_requested = 0);

// The OpenBLAS thread count chosen when none is requested, for `intra_op` LibTorch threads
// (docs/performance.md, "Threads" has the measurements behind it).
int default_blas_threads(int intra_op);

// OpenBLAS's current thread count; -1 when no OpenBLAS is loaded in this process.
int blas_threads();
// Sets OpenBLAS's thread count; false when no OpenBLAS is loaded.
bool set_blas_threads(int n);

}  // namespace speculators
