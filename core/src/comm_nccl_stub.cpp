// nccl_available() for builds without the NCCL backend (comm_nccl.cpp defines it otherwise).
#include "speculators/communicator.h"

#if !SPECULATORS_HAVE_NCCL
namespace speculators {
bool nccl_available() { return false; }
}  // namespace speculators
#endif
