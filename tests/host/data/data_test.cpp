// The host's data path: data.jsonl reading, split, collate and packing.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include "data/loader.h"
#include "data/packing.h"
#include "data/token_rows.h"
#include "data_util.h"
#include "observe/metrics.h"
#include "speculators/error.h"
#include "train/trainer.h"

using namespace speculators;
using namespace speculators::test;
namespace fs = std::filesystem;

namespace {
std::string write_text(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / "speculators_data_test";
  fs::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kData);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("data.jsonl rows are read, and bad rows name file and line", "[data]") {
  auto ok = write_text("ok.jsonl", "{\"input_ids\": [1, 2, 3], \"loss_mask\": [0, 1, 1]}\n\n{\"input_ids\": [4]}\n");
  auto rows = read_data_jsonl(ok);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].input_ids == std::vector<std::int64_t>{1, 2, 3});
  CHECK(rows[0].loss_mask == std::vector<std::int64_t>{0, 1, 1});
  CHECK(rows[1].loss_mask == std::vector<std::int64_t>{1});

  CHECK_THAT(error_of([&] { read_data_jsonl(write_text("bad.jsonl", "{\"input_ids\": [1]}\n{oops\n")); }),
             Catch::Contains("bad.jsonl:2"));
  CHECK_THAT(error_of([&] { read_data_jsonl(write_text("len.jsonl", "{\"input_ids\": [1, 2], \"loss_mask\": [1]}\n")); }),
             Catch::Contains("len.jsonl:1"));
  CHECK_THAT(error_of([&] { read_data_jsonl(write_text("empty.jsonl", "")); }), Catch::Contains("empty"));
  CHECK_THAT(error_of([&] { read_data_jsonl(write_text("mask.jsonl", "{\"input_ids\": [1], \"loss_mask\": [2]}\n")); }),
             Catch::Contains("0 or 1"));
  CHECK_THAT(error_of([&] { read_data_jsonl("/nonexistent/data.jsonl"); }), Catch::Contains("/nonexistent/data.jsonl"));
  // A number no double holds and nesting far past any row's are data errors too (error_of
  // checks the code), naming the file and line.
  const std::string huge = write_text("huge.jsonl", "{\"input_ids\": [1]}\n{\"input_ids\": [1e400]}\n");
  CHECK_THAT(error_of([&] { read_data_jsonl(huge); }), Catch::StartsWith(huge + ":2: invalid JSON"));
  const std::string deep = write_text("deep.jsonl", "{\"input_ids\": " + std::string(40000, '[') + std::string(40000, ']') + "}\n");
  CHECK_THAT(error_of([&] { read_data_jsonl(deep); }), Catch::StartsWith(deep + ":1: input_ids and loss_mask must be lists of integers"));
  // Numbers that are not int64 integers are refused, never truncated or wrapped (1e200 converted to
  // an integer is undefined behaviour; 2^64 does not fit; 3.5 is not a token id).
  for (const std::string bad : {"1e200", "18446744073709551616", "9223372036854775808", "3.5"}) {
    const std::string path = write_text("number.jsonl", "{\"input_ids\": [1, " + bad + "], \"loss_mask\": [1, 1]}\n");
    CHECK_THAT(error_of([&] { read_data_jsonl(path); }),
               Catch::StartsWith(path + ":1: input_ids and loss_mask must be lists of integers (got "));
  }
  const std::string mask = write_text("fmask.jsonl", "{\"input_ids\": [1, 2], \"loss_mask\": [1.0, 1]}\n");
  CHECK_THAT(error_of([&] { read_data_jsonl(mask); }), Catch::Contains("must be lists of integers (got 1.0)"));
}

TEST_CASE("a data.jsonl that is a FIFO or a directory is refused at once, never waited on", "[data]") {
  const auto dir = fs::temp_directory_path() / ("speculators_data_fifo_" + std::to_string(::getpid()));
  fs::create_directories(dir / "data.jsonl.d");
  const std::string fifo = (dir / "data.jsonl").string();
  fs::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto result = std::async(std::launch::async, [&] { return error_of([&] { read_data_jsonl(fifo); }); });
  if (result.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    std::ofstream unblock(fifo);  // lets the blocked open return so the test can end
    FAIL("read_data_jsonl waited on a FIFO");
  }
  CHECK(result.get() == fifo + ": not a regular file (a FIFO); data.jsonl must be a file with one JSON object per line");
  const std::string directory = (dir / "data.jsonl.d").string();
  CHECK(error_of([&] { read_data_jsonl(directory); }) ==
        directory + ": not a regular file (a directory); data.jsonl must be a file with one JSON object per line");
  fs::remove_all(dir);
}

TEST_CASE("the split is contiguous with floor(N * ratio) train rows", "[data]") {
  auto [train, val] = split_rows(10, 0.75);
  CHECK(train == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK(val == std::vector<std::size_t>{7, 8, 9});
  CHECK_THROWS_AS(split_rows(10, 0.0), Error);
}

TEST_CASE("collate packs back to back, cuts the last sample and pads with -1 documents", "[data]") {
  auto batch = collate({make_sample(3, 10), make_sample(4, 20), make_sample(2, 30)}, 6);
  // Expected by hand: [10 11 12 20 21 22]; doc [0 0 0 1 1 1]; the third sample is dropped.
  CHECK(torch::equal(batch.at("input_ids"), torch::tensor({10, 11, 12, 20, 21, 22}, torch::kInt64).view({1, 6})));
  CHECK(torch::equal(batch.at("document_ids"), torch::tensor({0, 0, 0, 1, 1, 1}, torch::kInt64).view({1, 6})));
  CHECK(torch::equal(batch.at("position_ids"), torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64).view({1, 6})));
  CHECK(batch.at("hidden_states").sizes() == std::vector<std::int64_t>{1, 6, 3});

  auto padded = collate({make_sample(2, 5)}, 4);
  CHECK(torch::equal(padded.at("document_ids"), torch::tensor({0, 0, -1, -1}, torch::kInt64).view({1, 4})));
  CHECK(torch::equal(padded.at("input_ids"), torch::tensor({5, 6, 0, 0}, torch::kInt64).view({1, 4})));
  CHECK(padded.at("loss_mask")[0][3].item<std::int64_t>() == 0);
}

TEST_CASE("packing covers every row once, respects the capacity and reshuffles per epoch", "[data]") {
  std::vector<std::int64_t> lengths;
  for (int i = 0; i < 50; ++i) lengths.push_back(1 + (i * 7) % 13);
  std::vector<std::size_t> idx(50);
  for (std::size_t i = 0; i < 50; ++i) idx[i] = i;
  auto bins = pack_rows(idx, lengths, 16, 0, 0);
  std::multiset<std::size_t> seen;
  for (const auto& b : bins) {
    std::int64_t fill = 0;
    for (auto i : b) fill += lengths[i], seen.insert(i);
    CHECK(fill <= 16);
  }
  CHECK(seen == std::multiset<std::size_t>(idx.begin(), idx.end()));
  CHECK(pack_rows(idx, lengths, 16, 0, 0) == bins);   // deterministic
  CHECK(pack_rows(idx, lengths, 16, 0, 1) != bins);   // seed + epoch reshuffles
}


TEST_CASE("a loader started mid-epoch yields the same noisy batches as one read from the start", "[data]") {
  std::vector<Sample> samples;
  for (int i = 0; i < 30; ++i) samples.push_back(make_sample(2 + i % 5, 100 * i));
  VectorSource source(std::move(samples));
  IdentityAlgorithm algo;
  std::vector<std::size_t> idx(30);
  for (std::size_t i = 0; i < 30; ++i) idx[i] = i;
  Loader full(source, algo, idx, 8, 0.5, 7, true);
  Loader resumed(source, algo, idx, 8, 0.5, 7, true);
  for (std::int64_t epoch : {0, 1}) {
    full.start_epoch(epoch);
    std::vector<Batch> all;
    while (auto b = full.next()) all.push_back(*b);
    REQUIRE(all.size() == full.num_batches());
    REQUIRE(all.size() > 3);
    const std::size_t skip = 3;
    resumed.start_epoch(epoch, skip);
    CHECK(resumed.position() == skip);
    for (std::size_t i = skip; i < all.size(); ++i) {
      auto b = resumed.next();
      REQUIRE(b);
      CHECK(torch::equal(b->at("hidden_states"), all[i].at("hidden_states")));
      CHECK(torch::equal(b->at("input_ids"), all[i].at("input_ids")));
    }
    CHECK_FALSE(resumed.next());
    // The noise is really there: hidden states differ from the clean base value.
    const auto& h = all[0].at("hidden_states");
    CHECK((h - h.round()).abs().max().item<double>() > 0);
  }
}

TEST_CASE("metric pairs are ratios of sums, scalars are means", "[metrics]") {
  MetricAccumulator acc;
  acc.add({{"loss_sum", torch::tensor(2.0)}, {"loss_total", torch::tensor(1.0)},
           {"full_acc_0_sum", torch::tensor(3.0)}, {"full_acc_0_total", torch::tensor(4.0)},
           {"lr_like", torch::tensor(1.0)}});
  acc.add({{"loss_sum", torch::tensor(4.0)}, {"loss_total", torch::tensor(1.0)},
           {"full_acc_0_sum", torch::tensor(1.0)}, {"full_acc_0_total", torch::tensor(4.0)},
           {"lr_like", torch::tensor(3.0)}});
  auto v = acc.values();
  CHECK(v.at("loss") == Approx(3.0));
  CHECK(v.at("full_acc_0") == Approx(0.5));   // (3 + 1) / (4 + 4), token-weighted
  CHECK(v.at("lr_like") == Approx(2.0));
  CHECK(v.count("loss_sum") == 0);
  CHECK(estimated_acceptance_length({{"full_acc_0", 0.5}, {"full_acc_1", 0.25}, {"loss", 9.0}}) == Approx(1.75));
  CHECK_THROWS_AS(acc.add({{"other", torch::tensor(1.0)}}), Error);
}

TEST_CASE("a forward result without a loss metric is rejected", "[metrics]") {
  ForwardResult r;
  r.loss = torch::tensor(1.0);
  r.metrics["acc"] = torch::tensor(0.5);
  CHECK_THROWS_WITH(check_forward_result(r, "x"), Catch::Contains("loss_sum/loss_total"));
  r.metrics["loss"] = torch::tensor(1.0);
  CHECK_NOTHROW(check_forward_result(r, "x"));
  r.loss = torch::ones({2});
  CHECK_THROWS_WITH(check_forward_result(r, "x"), Catch::Contains("scalar"));
}

TEST_CASE("learning-rate factors follow the reference's schedules", "[scheduler]") {
  // transformers' get_linear_schedule_with_warmup: s/warmup during warmup, then (total - s)/(total - warmup).
  CHECK(lr_factor("linear", 0, 100, 10, 0.5) == Approx(0.0));
  CHECK(lr_factor("linear", 5, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("linear", 10, 100, 10, 0.5) == Approx(1.0));
  CHECK(lr_factor("linear", 55, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("linear", 100, 100, 10, 0.5) == Approx(0.0));
  CHECK(lr_factor("linear", 0, 50, 0, 0.5) == Approx(1.0));
  // cosine with 0.5 cycles: halfway through the decay the factor is 0.5.
  CHECK(lr_factor("cosine", 55, 100, 10, 0.5) == Approx(0.5));
  CHECK(lr_factor("cosine", 10, 100, 10, 0.5) == Approx(1.0));
  CHECK(lr_factor("none", 3, 100, 10, 0.5) == Approx(1.0));
}
