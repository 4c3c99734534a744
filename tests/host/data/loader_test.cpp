// Multipack packing (speculators/train/distributed_batch_sampler.py) and the Loader's background
// workers: the plan of every rank, and batches that are the same with and without workers, also
// resumed mid-epoch.
#include <catch2/catch.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <numeric>
#include <set>

#include "data/loader.h"
#include "data/packing.h"
#include "data/prefetch.h"
#include "data_util.h"
#include "speculators/error.h"

using namespace speculators;
using namespace speculators::test;

namespace {

std::vector<std::size_t> iota_indices(std::size_t n) {
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

std::int64_t clipped_sum(const std::vector<std::size_t>& batch, const std::vector<std::int64_t>& lengths, std::int64_t L) {
  std::int64_t sum = 0;
  for (auto i : batch) sum += std::min(lengths[i], L);
  return sum;
}

std::vector<Batch> read_epoch(Loader& loader, std::int64_t epoch, std::size_t skip = 0) {
  loader.start_epoch(epoch, skip);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

void check_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (const auto& [key, t] : a[i]) CHECK(torch::equal(t, b[i].at(key)));
  }
}

}  // namespace

TEST_CASE("one rank: every row once, each step the longest prefix of the shuffle that fits", "[data][packing]") {
  std::vector<std::int64_t> lengths;
  for (int i = 0; i < 60; ++i) lengths.push_back(1 + (i * 7) % 13);
  lengths[5] = 40;  // longer than L: clipped, a step of its own
  const auto idx = iota_indices(60);
  const std::int64_t L = 16;
  auto bins = pack_rows(idx, lengths, L, 3, 0);
  std::vector<std::size_t> concat;
  for (std::size_t k = 0; k < bins.size(); ++k) {
    CHECK(clipped_sum(bins[k], lengths, L) <= L);
    // Maximal: the first row of the next step would not have fit.
    if (k + 1 < bins.size()) CHECK(clipped_sum(bins[k], lengths, L) + std::min(lengths[bins[k + 1][0]], L) > L);
    concat.insert(concat.end(), bins[k].begin(), bins[k].end());
  }
  CHECK(std::multiset<std::size_t>(concat.begin(), concat.end()) == std::multiset<std::size_t>(idx.begin(), idx.end()));
  CHECK(concat != idx);                                  // shuffled
  CHECK(pack_rows(idx, lengths, L, 3, 0) == bins);       // deterministic
  CHECK(pack_rows(idx, lengths, L, 3, 1) != bins);       // seed + epoch reshuffles
  CHECK(pack_rows(idx, lengths, L, 4, 0) == pack_rows(idx, lengths, L, 3, 1));  // it is seed + epoch
}

TEST_CASE("several ranks: same step count, disjoint bins within capacity, fewer than R rows dropped", "[data][packing]") {
  std::vector<std::int64_t> lengths;
  for (int i = 0; i < 101; ++i) lengths.push_back(1 + (i * 11) % 17);
  const auto idx = iota_indices(101);
  const std::int64_t L = 24;
  for (int world : {2, 3}) {
    std::vector<std::vector<std::vector<std::size_t>>> plans;
    for (int r = 0; r < world; ++r) plans.push_back(pack_rows(idx, lengths, L, 0, 2, r, world));
    std::multiset<std::size_t> seen;
    for (int r = 0; r < world; ++r) {
      REQUIRE(plans[r].size() == plans[0].size());
      for (const auto& batch : plans[r]) {
        CHECK_FALSE(batch.empty());
        CHECK(clipped_sum(batch, lengths, L) <= L);
        seen.insert(batch.begin(), batch.end());
      }
    }
    CHECK(std::set<std::size_t>(seen.begin(), seen.end()).size() == seen.size());  // no row twice
    CHECK(seen.size() > 101 - static_cast<std::size_t>(world));
    // The rank holding a step's longest row rotates (the reference's bin rotation).
    std::set<int> holders;
    for (std::size_t step = 0; step < plans[0].size(); ++step) {
      std::int64_t best = -1;
      int holder = -1;
      for (int r = 0; r < world; ++r) {
        for (auto i : plans[r][step]) {
          if (lengths[i] > best) best = lengths[i], holder = r;
        }
      }
      holders.insert(holder);
    }
    CHECK(holders.size() > 1);
  }
  CHECK_THROWS_AS(pack_rows(idx, lengths, L, 0, 0, 2, 2), Error);
}

TEST_CASE("two loader ranks yield the same number of batches over disjoint rows", "[data][packing]") {
  std::vector<Sample> samples;
  for (int i = 0; i < 40; ++i) samples.push_back(make_sample(2 + i % 6, 100 * i));
  VectorSource source(std::move(samples));
  IdentityAlgorithm algo;
  LoaderOptions r0, r1;
  r0.world_size = r1.world_size = 2;
  r1.rank = 1;
  Loader a(source, algo, iota_indices(40), 12, 0.0, 5, true, r0);
  Loader b(source, algo, iota_indices(40), 12, 0.0, 5, true, r1);
  auto ea = read_epoch(a, 0), eb = read_epoch(b, 0);
  REQUIRE(ea.size() == eb.size());
  std::set<std::int64_t> ids_a, ids_b;
  for (const auto& batch : ea) {
    auto ids = batch.at("input_ids").masked_select(batch.at("document_ids") >= 0);
    for (std::int64_t k = 0; k < ids.numel(); ++k) ids_a.insert(ids[k].item<std::int64_t>());
  }
  for (const auto& batch : eb) {
    auto ids = batch.at("input_ids").masked_select(batch.at("document_ids") >= 0);
    for (std::int64_t k = 0; k < ids.numel(); ++k) ids_b.insert(ids[k].item<std::int64_t>());
  }
  for (auto id : ids_a) CHECK(ids_b.count(id) == 0);
}

TEST_CASE("workers yield the same batches as building them in next(), also resumed", "[data][prefetch]") {
  std::vector<Sample> samples;
  for (int i = 0; i < 50; ++i) samples.push_back(make_sample(2 + i % 5, 100 * i));
  VectorSource source(std::move(samples));
  IdentityAlgorithm algo;
  LoaderOptions workers;
  workers.num_workers = 2;
  workers.prefetch_factor = 3;
  Loader plain(source, algo, iota_indices(50), 8, 0.5, 7, true);
  Loader threaded(source, algo, iota_indices(50), 8, 0.5, 7, true, workers);
  for (std::int64_t epoch : {0, 1}) {
    auto want = read_epoch(plain, epoch);
    REQUIRE(want.size() > 5);
    check_same(read_epoch(threaded, epoch), want);
    // Resumed mid-epoch, and restarted before the previous epoch was consumed.
    threaded.start_epoch(epoch);
    threaded.next();
    auto resumed = read_epoch(threaded, epoch, 4);
    check_same(resumed, std::vector<Batch>(want.begin() + 4, want.end()));
    // The noise is really there.
    const auto& h = want[0].at("hidden_states");
    CHECK((h - h.round()).abs().max().item<double>() > 0);
  }
}

namespace {
// Fails on one row, as a corrupt file would under --on-bad-sample raise.
class FailingSource : public VectorSource {
 public:
  using VectorSource::VectorSource;
  std::vector<Sample> get(const std::vector<std::size_t>& indices) override {
    for (auto i : indices) {
      if (i == 13) fail_data("hs_13.safetensors (data.jsonl row 13): broken");
    }
    return VectorSource::get(indices);
  }
};
}  // namespace

TEST_CASE("an error in a worker surfaces in next() with its message, after the batches before it", "[data][prefetch]") {
  std::vector<Sample> samples;
  for (int i = 0; i < 30; ++i) samples.push_back(make_sample(3, 100 * i));
  FailingSource source(std::move(samples));
  IdentityAlgorithm algo;
  LoaderOptions workers;
  workers.num_workers = 2;
  Loader loader(source, algo, iota_indices(30), 6, 0.0, 1, true, workers);
  loader.start_epoch(0);
  // Where row 13 sits in the plan, computed independently of the loader.
  std::vector<std::int64_t> lengths(30, 3);
  auto plan = pack_rows(iota_indices(30), lengths, 6, 1, 0);
  std::size_t failing = 0;
  while (std::find(plan[failing].begin(), plan[failing].end(), 13) == plan[failing].end()) ++failing;
  for (std::size_t b = 0; b < failing; ++b) REQUIRE(loader.next());
  try {
    loader.next();
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
    CHECK_THAT(e.what(), Catch::Contains("hs_13.safetensors (data.jsonl row 13): broken"));
  }
}

TEST_CASE("resharded packing: the rest of an epoch for another world size", "[data][packing][dist]") {
  std::vector<std::int64_t> lengths;
  for (int i = 0; i < 90; ++i) lengths.push_back(1 + (i * 11) % 17);
  const auto idx = iota_indices(90);
  const std::int64_t L = 24;
  for (int old_world : {1, 2, 3}) {
    for (int new_world : {1, 2, 3}) {
      const std::size_t done = 4;
      // What the old ranks trained on: their first `done` steps.
      std::multiset<std::size_t> trained, rest;
      for (int r = 0; r < old_world; ++r) {
        auto plan = pack_rows(idx, lengths, L, 5, 1, r, old_world);
        REQUIRE(plan.size() > done);
        for (std::size_t k = 0; k < done; ++k) trained.insert(plan[k].begin(), plan[k].end());
      }
      std::size_t steps = 0;
      for (int r = 0; r < new_world; ++r) {
        auto plan = pack_rows_resharded(idx, lengths, L, 5, 1, done, old_world, 7, r, new_world);
        if (r == 0) steps = plan.size();
        CHECK(plan.size() == steps);
        for (const auto& batch : plan) {
          CHECK(clipped_sum(batch, lengths, L) <= L);
          rest.insert(batch.begin(), batch.end());
        }
      }
      // Nothing trained twice; nothing left out but fewer than new_world rows at the very end.
      for (auto i : rest) CHECK(trained.count(i) == 0);
      CHECK(trained.size() + rest.size() <= idx.size());
      CHECK(idx.size() - trained.size() - rest.size() < static_cast<std::size_t>(new_world) * 17);
      if (old_world == new_world) {
        // The same world size continues the original plan (the bin rotation aside).
        for (int r = 0; r < new_world; ++r) {
          auto full = pack_rows(idx, lengths, L, 5, 1, r, new_world);
          auto tail = pack_rows_resharded(idx, lengths, L, 5, 1, done, old_world, done, r, new_world);
          CHECK(std::vector<std::vector<std::size_t>>(full.begin() + static_cast<std::ptrdiff_t>(done), full.end()) ==
                tail);
        }
      }
    }
  }
}

// Thread creation fails when the address space has no room for more thread stacks. In a child
// (the limit must not reach this process) the prefetcher's constructor must throw a usage error
// naming --num-workers, after joining the threads it did start, and never hang or terminate.
TEST_CASE("a worker thread that cannot start is a usage error, not a hang", "[data][prefetch]") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::alarm(20);  // a deadlock ends as SIGALRM
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    const rlim_t room = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (64u << 20);
    const struct rlimit limit {room, room};
    if (pages == 0 || ::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(10);
    try {
      OrderedPrefetcher prefetcher(256, 1);  // 256 stacks of 8 MiB do not fit in 64 MiB
      ::_exit(11);
    } catch (const Error& e) {
      const std::string message = e.what();
      const bool ok = e.code() == ExitCode::kUsage && message.rfind("--num-workers 256: could not start data worker thread ", 0) == 0 &&
                      message.find("; use fewer workers") != std::string::npos && message.find('\n') == std::string::npos;
      ::_exit(ok ? 0 : 12);
    } catch (...) {
      ::_exit(13);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO("child status " << status);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
