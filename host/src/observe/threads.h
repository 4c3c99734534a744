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

// Sets the thread counts (docs/performance.md, "Threads", has the measurements behind the default):
// - requested > 0: LibTorch's intra-op threads and OpenBLAS's pool both get `requested`;
// - requested <= 0 with OMP_NUM_THREADS set: the environment decides both (OpenBLAS reads it too);
// - requested <= 0 otherwise: with OpenBLAS loaded, LibTorch gets 1 thread and OpenBLAS
//   available_cpus() (the matrix products use every CPU; the element-wise operators run on the
//   calling thread, without OpenMP barriers against OpenBLAS's spinning workers); without it,
//   LibTorch gets available_cpus().
// `blas_requested` > 0 sets OpenBLAS's pool explicitly; OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS in
// the environment leave it alone. Returns LibTorch's count in effect.
int apply_num_threads(int requested, int blas_requested = 0);

// OpenBLAS's current thread count; -1 when no OpenBLAS is loaded in this process.
int blas_threads();
// Sets OpenBLAS's thread count; false when no OpenBLAS is loaded.
bool set_blas_threads(int n);

}  // namespace speculators
