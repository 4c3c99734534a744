// The NCCL backend's entry points (private to core). Both are defined in every build: by
// comm_nccl.cpp when CMake found CUDA and NCCL (SPECULATORS_WITH_NCCL, see
// cmake/SpeculatorsNccl.cmake), otherwise by comm_nccl_stub.cpp, whose make_nccl_communicator()
// throws a usage error saying how to rebuild. No CUDA or NCCL header is needed to include this.
#pragma once

#include <chrono>
#include <memory>

#include "speculators/communicator.h"

namespace speculators::detail {

// Joins the job through a Rendezvous (rank 0's TCPStore carries the NCCL unique id) and creates
// an NCCL communicator on CUDA device `device`. Throws a usage error when this build has no NCCL
// backend or no such device exists, and Error(kDistributed) when a peer does not arrive or the
// NCCL initialisation fails or outlasts `timeout`.
std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& info, std::chrono::milliseconds timeout,
                                                     int device);

// How many CUDA devices this process sees: 0 without a GPU, a driver, or the NCCL backend.
int cuda_device_count();

}  // namespace speculators::detail
