// The NCCL backend (core/src/comm_nccl.cpp, or comm_nccl_stub.cpp in a build without it), through
// the public make_communicator(): a build without NCCL says how to rebuild; a build with it on a
// machine without a GPU fails with a clear usage error instead of crashing; with a GPU, one rank's
// collectives leave the inputs as they are (the sum, max or gather over a single rank is the
// input itself) and bad tensors are named; that case is tagged [cuda] and runs under ctest's label cuda.
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/cuda.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "../../../core/src/comm_nccl.h"
#include "../../core/io_test_util.h"
#include "speculators/communicator.h"
#include "speculators/error.h"

using namespace speculators;
using namespace std::chrono_literals;

namespace {

// A TCP port nothing listens on right now (the kernel picks it), for rank 0's store.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

RankInfo one_rank() {
  RankInfo info;
  info.master_addr = "127.0.0.1";
  info.master_port = free_port();
  return info;
}

ExitCode code_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.code();
  }
  return ExitCode::kOk;
}

// One rank on a GPU: every collective over a single rank returns its input.
void check_single_rank_collectives(Communicator& comm) {
  CHECK(comm.backend() == "nccl");
  CHECK(comm.rank() == 0);
  CHECK(comm.world_size() == 1);

  auto floats = torch::arange(10, torch::kFloat) * 0.5;
  auto longs = torch::arange(5, torch::kLong) * 3 - 4;
  const auto floats_before = floats.clone();
  const auto longs_before = longs.clone();
  std::vector<torch::Tensor> list{floats, longs};
  comm.all_reduce(list, ReduceOp::kSum);
  CHECK(torch::equal(floats, floats_before));
  CHECK(torch::equal(longs, longs_before));
  comm.all_reduce(floats, ReduceOp::kMax);
  comm.all_reduce(longs, ReduceOp::kMin);
  CHECK(torch::equal(floats, floats_before));
  CHECK(torch::equal(longs, longs_before));

  auto halves = torch::tensor({1.5, -2.0, 0.25}).to(torch::kHalf);
  const auto halves_before = halves.clone();
  comm.broadcast(halves, 0);
  CHECK(torch::equal(halves, halves_before));

  const auto doubles = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble);
  auto gathered = torch::zeros({4}, torch::kDouble);
  comm.all_gather(gathered, doubles);
  CHECK(torch::equal(gathered, doubles));

  auto ints = torch::arange(8, torch::kInt);
  auto scattered = torch::zeros({8}, torch::kInt);
  comm.reduce_scatter(scattered, ints, ReduceOp::kSum);
  CHECK(torch::equal(scattered, torch::arange(8, torch::kInt)));
  comm.barrier();

  // Bad tensors are refused before anything reaches NCCL, naming what is wrong.
  auto transposed = torch::zeros({3, 4}).t();
  CHECK_THAT(test::error_message([&] { comm.all_reduce(transposed); }), Catch::Contains("not contiguous"));
  auto flags = torch::ones({3}, torch::kBool);
  CHECK_THAT(test::error_message([&] { comm.all_reduce(flags); }), Catch::Contains("dtype Bool"));
  auto too_small = torch::zeros({3}, torch::kDouble);
  CHECK_THAT(test::error_message([&] { comm.all_gather(too_small, doubles); }),
             Catch::Contains("output has 3 elements"));
  CHECK_THAT(test::error_message([&] { comm.broadcast(halves, 1); }), Catch::Contains("root 1 is outside"));
}

}  // namespace

TEST_CASE("the nccl backend is either built and usable, or says clearly why not", "[nccl]") {
  if (!nccl_available()) {
    const std::string message = test::error_message([] { make_communicator("nccl", one_rank(), 5s); });
    CHECK_THAT(message, Catch::Contains("no NCCL backend") && Catch::Contains("-DSPECULATORS_WITH_NCCL=ON"));
    CHECK(code_of([] { make_communicator("nccl", one_rank(), 5s); }) == ExitCode::kUsage);
    return;
  }

  const int devices = speculators::detail::cuda_device_count();
  if (devices == 0) {
    // A build with NCCL on a machine without a GPU (the CI machine): a usage error, no crash.
    const std::string message = test::error_message([] { make_communicator("nccl", one_rank(), 5s); });
    CHECK_THAT(message, Catch::Contains("needs a CUDA GPU") && Catch::Contains("gloo"));
    CHECK(code_of([] { make_communicator("nccl", one_rank(), 5s); }) == ExitCode::kUsage);
  }
  // With a GPU, the case below (ctest label cuda) runs the collectives.
}

// Hidden from a plain host_tests run; the ctest entry cuda_nccl_tests (label cuda) runs it when the
// machine has a CUDA device and reports itself skipped otherwise (tests/cuda_gate.sh).
TEST_CASE("one nccl rank on a GPU leaves the inputs of its collectives as they are", "[.cuda][nccl]") {
  REQUIRE(nccl_available());
  const int devices = speculators::detail::cuda_device_count();
  REQUIRE(devices > 0);
  CHECK_THAT(test::error_message([&] { make_communicator("nccl", one_rank(), 5s, devices); }),
             Catch::Contains("CUDA device " + std::to_string(devices) + " does not exist"));
  auto comm = make_communicator("nccl", one_rank(), 60s, 0);
  check_single_rank_collectives(*comm);
  if (torch::cuda::is_available()) {  // a CUDA LibTorch: device tensors are used in place
    auto on_gpu = torch::arange(6, torch::kFloat).to(torch::Device(torch::kCUDA, 0));
    comm->all_reduce(on_gpu, ReduceOp::kSum);
    CHECK(torch::equal(on_gpu.cpu(), torch::arange(6, torch::kFloat)));
  }
}
