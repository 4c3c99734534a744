// `speculators-train --nproc-per-node N`: starts N ranks of this same command on this machine
// with the environment torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), forwards SIGINT/SIGTERM to them, and watches them: when one fails
// or dies, the others get `grace_seconds` to stop on their own (their collectives fail and name
// the rank) before they are terminated. The signal handlers it installs are restored when it
// returns or throws; when a rank cannot be started, the ranks already started are killed.
#pragma once

#include <string>
#include <vector>

namespace speculators {

// Returns the job's exit code: 0 when every rank succeeded, else the first failing rank's code
// (5, kDistributed, when that rank was killed by a signal).
int launch_local_ranks(int nproc, const std::vector<std::string>& argv, double grace_seconds);

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_local_port();

}  // namespace speculators
