// See threads.h.
#include "observe/threads.h"

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

int apply_num_threads(int requested) {
  if (requested > 0) {
    torch::set_num_threads(requested);
  } else if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    torch::set_num_threads(available_cpus());
  }
  return torch::get_num_threads();
}

}  // namespace speculators
