// comm_check: one rank of the communicator's self-check (e2e case dist_collectives). It joins
// the job its launcher environment describes over Gloo, runs every collective on inputs that
// depend on the rank, and compares each result with its closed form.
//   comm_check TIMEOUT_SECONDS [hang]
// With "hang", rank 1 stops itself (SIGSTOP) after the checks and rank 0 then expects its next
// all_reduce to fail within the timeout with an error naming rank 1.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "speculators/communicator.h"
#include "speculators/error.h"

using speculators::Communicator;
using speculators::ReduceOp;

namespace {

void expect(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: %s is wrong\n", rank, what.c_str());
  std::exit(1);
}

bool same(const torch::Tensor& a, const torch::Tensor& b) { return a.sizes() == b.sizes() && torch::equal(a, b); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: comm_check TIMEOUT_SECONDS [hang]\n");
    return 2;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<long>(std::atof(argv[1]) * 1000));
  const bool hang = argc > 2 && std::string(argv[2]) == "hang";
  try {
    const auto info = speculators::rank_info_from_environment();
    auto comm = speculators::make_communicator("gloo", info, timeout);
    const int r = comm->rank(), n = comm->world_size();
    const double tri = n * (n + 1) / 2.0;

    auto a = torch::arange(5, torch::kFloat32) * (r + 1);
    comm->all_reduce(a);
    expect(same(a, torch::arange(5, torch::kFloat32) * tri), "all_reduce sum", r);

    // A list of tensors of different sizes and dtypes in one call.
    std::vector<torch::Tensor> list = {torch::full({3}, r + 1.0, torch::kFloat32),
                                       torch::full({7}, static_cast<double>(r), torch::kFloat64),
                                       torch::full({2}, static_cast<std::int64_t>(r + 1), torch::kInt64)};
    comm->all_reduce(list);
    expect(same(list[0], torch::full({3}, tri, torch::kFloat32)), "all_reduce list (float)", r);
    expect(same(list[1], torch::full({7}, tri - n, torch::kFloat64)), "all_reduce list (double)", r);
    expect(same(list[2], torch::full({2}, static_cast<std::int64_t>(tri), torch::kInt64)), "all_reduce list (int64)", r);

    auto mx = torch::tensor({static_cast<float>(r), static_cast<float>(-r)});
    comm->all_reduce(mx, ReduceOp::kMax);
    expect(same(mx, torch::tensor({static_cast<float>(n - 1), 0.0f})), "all_reduce max", r);
    auto mn = torch::tensor({static_cast<float>(r)});
    comm->all_reduce(mn, ReduceOp::kMin);
    expect(same(mn, torch::tensor({0.0f})), "all_reduce min", r);

    auto b = torch::full({4}, static_cast<float>(r));
    comm->broadcast(b, n - 1);
    expect(same(b, torch::full({4}, static_cast<float>(n - 1))), "broadcast from the last rank", r);

    // Chunk c of rank q's input is arange(3) + 3c + q; rank r receives chunk r summed over q.
    auto input = torch::arange(3 * n, torch::kFloat32) + r;
    auto out = torch::empty({3}, torch::kFloat32);
    comm->reduce_scatter(out, input);
    const auto want = (torch::arange(3, torch::kFloat32) + 3 * r) * n + static_cast<float>(n * (n - 1) / 2);
    expect(same(out, want), "reduce_scatter", r);

    auto gathered = torch::empty({2 * n}, torch::kFloat32);
    comm->all_gather(gathered, torch::full({2}, static_cast<float>(r)));
    expect(same(gathered, torch::arange(n, torch::kFloat32).repeat_interleave(2)), "all_gather", r);

    comm->barrier();
    std::printf("rank %d of %d: every collective is correct\n", r, n);
    std::fflush(stdout);
    if (hang) {
      if (r == 1) std::raise(SIGSTOP);
      if (r == 0) {
        auto x = torch::ones({1});
        comm->all_reduce(x);
        std::fprintf(stderr, "rank 0: the all_reduce with a stopped rank returned\n");
        return 1;
      }
    }
    return 0;
  } catch (const speculators::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return static_cast<int>(e.code());
  }
}
