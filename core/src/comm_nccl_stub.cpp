// The stand-in for the NCCL backend in a build without it (SPECULATORS_WITH_NCCL=OFF, or AUTO
// where CUDA or NCCL was not found): asking for "nccl" says how to get a build that has it.
#include <string>

#include "comm_nccl.h"
#include "speculators/error.h"

namespace speculators {

bool nccl_available() { return false; }

namespace detail {

std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& info, std::chrono::milliseconds timeout,
                                                     int device) {
  fail_usage(
      "distributed backend 'nccl': this build has no NCCL backend; rebuild with "
      "-DSPECULATORS_WITH_NCCL=ON where CUDA and NCCL are installed, or use the 'gloo' backend");
}

int cuda_device_count() { return 0; }

}  // namespace detail
}  // namespace speculators
