// See threads.h.
#include "observe/threads.h"

#include <dlfcn.h>
#include <sched.h>
#include <torch/torch.h>

#include <cstdlib>
#include <thread>

namespace speculators {

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

namespace {

// LibTorch's set_num_threads does not reach OpenBLAS's own thread pool (Debian's LibTorch uses
// libopenblas0-pthread). Left at one thread per CPU, two threads that call BLAS at once (the
// training step and a data worker running the online verifier) can deadlock inside OpenBLAS's
// thread server (OpenMathLib/OpenBLAS issues #660, #2126). The symbol is looked up at run time:
// another BLAS has no such function and needs nothing.
void apply_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(threads);
}

}  // namespace

int apply_num_threads(int requested) {
  if (requested > 0) {
    torch::set_num_threads(requested);
  } else if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    torch::set_num_threads(available_cpus());
  }
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) apply_blas_threads(torch::get_num_threads());
  return torch::get_num_threads();
}

}  // namespace speculators
