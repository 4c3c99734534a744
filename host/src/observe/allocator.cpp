// See allocator.h.
#include "observe/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace speculators {

std::string keep_large_allocations_on_heap() {
  for (const char* name : {"MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"}) {
    if (std::getenv(name) != nullptr) return std::string("C allocator as configured by ") + name;
  }
  if (const char* mode = std::getenv("SPECULATORS_MALLOC"); mode != nullptr && std::strcmp(mode, "system") == 0) {
    return "C allocator unchanged (SPECULATORS_MALLOC=system)";
  }
#if defined(M_MMAP_MAX) && defined(M_TRIM_THRESHOLD)
  // Trimming returns a free top of the heap above the threshold to the kernel; 2 GiB, the largest
  // value mallopt takes, keeps a step's worth of freed tensors at every shape this runs on the CPU.
  const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 0x7fffffff) == 1;
  return ok ? "heap reuse for large tensors" : "C allocator unchanged (mallopt refused the settings)";
#else
  return "C allocator unchanged (not glibc)";
#endif
}

}  // namespace speculators
