// See threads.h.
#include "observe/threads.h"

#include <dlfcn.h>
#include <sched.h>
#include <torch/torch.h>

#include <cstdlib>
#include <thread>

namespace speculators {

namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

// OpenBLAS's entry points, when the process has loaded it (through LibTorch's BLAS dependency).
template <typename F>
F openblas_symbol(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, name));
}

}  // namespace

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

int blas_threads() {
  const auto get = openblas_symbol<GetThreads>("openblas_get_num_threads");
  return get != nullptr ? get() : -1;
}

bool set_blas_threads(int n) {
  const auto set = openblas_symbol<SetThreads>("openblas_set_num_threads");
  if (set == nullptr) return false;
  set(n);
  return true;
}

int apply_num_threads(int requested, int blas_requested) {
  const bool openblas = blas_threads() > 0;
  const bool omp_env = std::getenv("OMP_NUM_THREADS") != nullptr;
  if (requested > 0) {
    torch::set_num_threads(requested);
  } else if (!omp_env) {
    torch::set_num_threads(openblas ? 1 : available_cpus());
  }
  const bool blas_env = std::getenv("OPENBLAS_NUM_THREADS") != nullptr || std::getenv("GOTO_NUM_THREADS") != nullptr;
  if (blas_requested > 0) {
    set_blas_threads(blas_requested);
  } else if (!blas_env && requested > 0) {
    set_blas_threads(requested);
  } else if (!blas_env && !omp_env) {
    set_blas_threads(available_cpus());
  }
  return torch::get_num_threads();
}

}  // namespace speculators
