// The launcher environment (communicator.h): torchrun, SLURM and Open MPI variables, and the
// errors for values that cannot be right. Collectives themselves run in real processes
// (e2e cases dist_*).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <string>

#include "speculators/communicator.h"
#include "speculators/error.h"
#include "train/distributed.h"

using namespace speculators;

namespace {

const char* const kVariables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                                  "MASTER_PORT", "SPECULATORS_LAUNCHER", "SLURM_PROCID", "SLURM_NTASKS",
                                  "SLURM_LOCALID", "SLURM_NNODES", "SLURM_LAUNCH_NODE_IPADDR",
                                  "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                  "OMPI_COMM_WORLD_LOCAL_SIZE"};

// Sets exactly `vars` among the launcher variables for its lifetime, then restores them.
class Environment {
 public:
  explicit Environment(const std::map<std::string, std::string>& vars) {
    for (const char* name : kVariables) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~Environment() {
    for (const char* name : kVariables) ::unsetenv(name);
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

}  // namespace

TEST_CASE("no launcher variables: one process", "[dist]") {
  Environment env({});
  const auto info = rank_info_from_environment();
  CHECK(info.launcher == "none");
  CHECK(info.rank == 0);
  CHECK(info.world_size == 1);
}

TEST_CASE("torchrun's variables", "[dist]") {
  Environment env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                   {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29555"}});
  const auto info = rank_info_from_environment();
  CHECK(info.launcher == "torchrun");
  CHECK(info.rank == 5);
  CHECK(info.world_size == 8);
  CHECK(info.local_rank == 1);
  CHECK(info.local_world_size == 4);
  CHECK(info.master_addr == "10.0.0.7");
  CHECK(info.master_port == 29555);
}

TEST_CASE("SLURM's variables, with the launch node as the default rendezvous", "[dist]") {
  Environment env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "3"}, {"SLURM_NNODES", "2"},
                   {"SLURM_LAUNCH_NODE_IPADDR", "10.1.2.3"}});
  const auto info = rank_info_from_environment();
  CHECK(info.launcher == "slurm");
  CHECK(info.rank == 3);
  CHECK(info.world_size == 16);
  CHECK(info.local_rank == 3);
  CHECK(info.master_addr == "10.1.2.3");
  CHECK(info.master_port == 29500);
}

TEST_CASE("Open MPI's variables", "[dist]") {
  Environment env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"MASTER_PORT", "2000"}});
  const auto info = rank_info_from_environment();
  CHECK(info.launcher == "openmpi");
  CHECK(info.rank == 1);
  CHECK(info.world_size == 2);
  CHECK(info.local_world_size == 2);
  CHECK(info.master_addr == "127.0.0.1");
  CHECK(info.master_port == 2000);
}

TEST_CASE("launcher variables that cannot be right are usage errors naming them", "[dist]") {
  auto usage_error = [](const std::map<std::string, std::string>& vars) {
    Environment env(vars);
    try {
      rank_info_from_environment();
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kUsage);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(usage_error({{"RANK", "4"}, {"WORLD_SIZE", "4"}}) == "torchrun environment: rank 4 is outside a world of 4");
  CHECK(usage_error({{"RANK", "x"}, {"WORLD_SIZE", "4"}}) ==
        "environment variable RANK=\"x\" is not a non-negative integer");
  CHECK(usage_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}) ==
        "MASTER_PORT=70000 is not a TCP port");
  CHECK(usage_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_NNODES", "2"}}).find(
            "no MASTER_ADDR") != std::string::npos);
}

TEST_CASE("--shard and --dist-backend values", "[dist]") {
  CHECK(parse_shard_mode("none") == ShardMode::kNone);
  CHECK(parse_shard_mode("optimizer") == ShardMode::kOptimizer);
  CHECK(parse_shard_mode("full") == ShardMode::kFull);
  CHECK(to_string(ShardMode::kFull) == "full");
  CHECK_THROWS_WITH(parse_shard_mode("zero3"), "--shard must be none, optimizer or full, got \"zero3\"");
  const RankInfo one;
  CHECK_THROWS_WITH(make_communicator("mpi", one, std::chrono::milliseconds(1000)),
                    "unknown distributed backend \"mpi\" (expected gloo or nccl)");
  if (!nccl_available()) {
    CHECK_THROWS_WITH(make_communicator("nccl", one, std::chrono::milliseconds(1000)),
                      Catch::Contains("this build has no NCCL backend"));
  }
}

TEST_CASE("the local communicator is the identity", "[dist]") {
  auto comm = make_local_communicator();
  CHECK(comm->rank() == 0);
  CHECK(comm->world_size() == 1);
  auto t = torch::arange(4, torch::kFloat32);
  comm->all_reduce(t);
  comm->broadcast(t, 0);
  CHECK(torch::equal(t, torch::arange(4, torch::kFloat32)));
  auto out = torch::empty({4});
  comm->all_gather(out, t);
  CHECK(torch::equal(out, t));
}
