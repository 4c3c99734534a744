// The files feature source (speculators/data_generation/offline.py): samples read from hand-written
// hs_{i}.safetensors equal the tensors written, and every kind of bad sample is named (file and
// row), counted under --on-bad-sample skip and fatal (exit code 4) under raise.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <fstream>
#include <thread>

#include "../../error_of.h"
#include "data/feature_files.h"
#include "data_util.h"
#include "speculators/error.h"
#include "speculators/log.h"

using namespace speculators;
using namespace speculators::test;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kA = 2, kH = 4;

TokenRow row_of(std::vector<std::int64_t> ids, std::vector<std::int64_t> mask) {
  TokenRow r;
  r.input_ids = std::move(ids);
  r.loss_mask = std::move(mask);
  return r;
}

// A directory with `n` good rows of 5 tokens (fp32 features) and the rows themselves.
std::vector<TokenRow> good_dir(const std::string& dir, std::size_t n) {
  std::vector<TokenRow> rows;
  for (std::size_t i = 0; i < n; ++i) {
    auto base = static_cast<std::int64_t>(10 * i);
    rows.push_back(row_of({base, base + 1, base + 2, base + 3, base + 4}, {0, 1, 1, 1, 1}));
    write_hs(dir, i, torch::randn({5, kA + 1, kH}), rows.back().input_ids);
  }
  write_jsonl(dir, rows);
  return rows;
}

std::string data_error(const std::function<void()>& f) { return test::error_of(f, ExitCode::kData); }

// Reads row `bad_row` under both policies: skip returns an empty sample and counts it, raise
// throws a data error whose message must contain the file name and `what`.
void check_bad_row(const std::string& dir, const std::vector<TokenRow>& rows, std::size_t bad_row, const std::string& what) {
  auto skip_log = std::make_shared<BadSampleLog>(BadSamplePolicy::kSkip);
  FileFeatureSource skip(dir, rows, kA, kH, skip_log, 0.2);
  auto samples = skip.get({bad_row, (bad_row + 1) % rows.size()});
  CHECK(samples[0].tensors.empty());
  CHECK_FALSE(samples[1].tensors.empty());
  CHECK(skip.bad_samples() == 1);
  FileFeatureSource raise(dir, rows, kA, kH, std::make_shared<BadSampleLog>(BadSamplePolicy::kRaise), 0.2);
  const std::string msg = data_error([&] { raise.get({bad_row}); });
  CHECK_THAT(msg, Catch::Contains(cat("hs_", bad_row, ".safetensors")));
  CHECK_THAT(msg, Catch::Contains(cat("row ", bad_row)));
  CHECK_THAT(msg, Catch::Contains(what));
}

}  // namespace

TEST_CASE("files source: samples equal the tensors written, bf16 and fp32", "[data][files]") {
  const auto dir = scratch_dir("files_read");
  std::vector<TokenRow> rows = {row_of({3, 4, 5, 6}, {0, 0, 1, 1}), row_of({7, 8, 9}, {1, 1, 1})};
  write_jsonl(dir, rows);
  torch::manual_seed(0);
  auto hs0 = torch::randn({4, kA + 1, kH}).to(torch::kBFloat16);
  auto hs1 = torch::randn({3, kA + 1, kH});
  write_hs(dir, 0, hs0, rows[0].input_ids);
  write_hs(dir, 1, hs1, rows[1].input_ids);
  FileFeatureSource source(dir, read_data_jsonl(dir + "/data.jsonl"), kA, kH, nullptr);
  REQUIRE(source.size() == 2);
  CHECK(source.length(0) == 4);
  auto s = source.get({1, 0});
  REQUIRE(s.size() == 2);
  const std::vector<std::pair<torch::Tensor, const TokenRow*>> expect = {{hs1, &rows[1]}, {hs0, &rows[0]}};
  for (std::size_t k = 0; k < 2; ++k) {
    const auto& [hs, row] = expect[k];
    const auto T = hs.size(0);
    // train/data.py: hidden_states = hs[:, :-1].flatten(1); verifier_last_hidden_states = hs[:, -1].
    torch::Tensor want_hidden = torch::empty({T, kA * kH});
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t a = 0; a < kA; ++a) {
        for (std::int64_t h = 0; h < kH; ++h) want_hidden[t][a * kH + h] = hs[t][a][h].to(torch::kFloat32);
      }
    }
    CHECK(s[k].tensors.at("hidden_states").dtype() == torch::kFloat32);
    CHECK(torch::equal(s[k].tensors.at("hidden_states"), want_hidden));
    CHECK(torch::equal(s[k].tensors.at("verifier_last_hidden_states"), hs.select(1, kA).to(torch::kFloat32)));
    CHECK(torch::equal(s[k].tensors.at("input_ids"), torch::tensor(row->input_ids, torch::kInt64)));
    CHECK(torch::equal(s[k].tensors.at("loss_mask"), torch::tensor(row->loss_mask, torch::kInt64)));
    CHECK(torch::equal(s[k].tensors.at("position_ids"), torch::arange(T, torch::kInt64)));
  }
}

TEST_CASE("files source: a directory generated for other layers fails at once", "[data][files]") {
  const auto dir = scratch_dir("files_layers");
  auto rows = good_dir(dir, 2);
  const auto msg = data_error([&] { FileFeatureSource(dir, rows, kA + 1, kH, nullptr); });
  CHECK_THAT(msg, Catch::Contains("hs_0.safetensors") && Catch::Contains("[T, 4, 4]"));
  const auto none = scratch_dir("files_none");
  fs::create_directories(none + "/hidden_states");
  CHECK_THAT(data_error([&] { FileFeatureSource(none, rows, kA, kH, nullptr); }), Catch::Contains("no hs_"));
  CHECK_THAT(data_error([&] { FileFeatureSource(scratch_dir("files_nodir"), rows, kA, kH, nullptr); }),
             Catch::Contains("hidden_states: not a directory"));
}

TEST_CASE("files source: a truncated file is a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_trunc");
  auto rows = good_dir(dir, 3);
  const auto path = hs_file_path(dir, 1);
  fs::resize_file(path, fs::file_size(path) - 7);
  check_bad_row(dir, rows, 1, "truncated");
}

TEST_CASE("files source: a corrupt header is a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_corrupt");
  auto rows = good_dir(dir, 3);
  std::fstream f(hs_file_path(dir, 2), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(9);
  f.write("}}}}", 4);
  f.close();
  check_bad_row(dir, rows, 2, "not valid JSON");
}

TEST_CASE("files source: a wrong shape is a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_shape");
  auto rows = good_dir(dir, 3);
  write_hs(dir, 1, torch::randn({5, kA + 1, kH + 1}), rows[1].input_ids);
  check_bad_row(dir, rows, 1, "shape [5, 3, 5], expected [5, 3, 4]");
  write_hs(dir, 1, torch::randn({4, kA + 1, kH}), {10, 11, 12, 13});  // T differs from data.jsonl
  check_bad_row(dir, rows, 1, "expected [5, 3, 4]");
}

TEST_CASE("files source: NaN or Inf features are a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_nan");
  auto rows = good_dir(dir, 3);
  auto hs = torch::randn({5, kA + 1, kH});
  hs[3][1][2] = std::numeric_limits<float>::quiet_NaN();
  write_hs(dir, 0, hs, rows[0].input_ids);
  check_bad_row(dir, rows, 0, "non-finite value (NaN or Inf) at token 3, slot 1");
  hs = torch::randn({5, kA + 1, kH}).to(torch::kBFloat16);
  hs[4][2][0] = std::numeric_limits<float>::infinity();
  write_hs(dir, 0, hs, rows[0].input_ids);
  check_bad_row(dir, rows, 0, "at token 4, slot 2");
}

TEST_CASE("files source: token_ids that differ from input_ids are a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_ids");
  auto rows = good_dir(dir, 3);
  write_hs(dir, 2, torch::randn({5, kA + 1, kH}), {20, 21, 99, 23, 24});
  check_bad_row(dir, rows, 2, "token_ids differ from data.jsonl input_ids at position 2 (file 99, data.jsonl 22)");
}

TEST_CASE("files source: a missing file is a bad sample", "[data][files][bad]") {
  const auto dir = scratch_dir("files_missing");
  auto rows = good_dir(dir, 3);
  fs::remove(hs_file_path(dir, 1));
  check_bad_row(dir, rows, 1, "file missing");
}

TEST_CASE("rows without a supervised token are reported with file and line", "[data][bad]") {
  std::vector<TokenRow> rows = {row_of({1, 2}, {0, 1}), row_of({3, 4}, {0, 0}), row_of({5}, {1})};
  rows[1].line = 7;
  BadSampleLog skip(BadSamplePolicy::kSkip);
  CHECK(keep_supervised_rows(rows, {0, 1, 2}, skip, "d/data.jsonl") == std::vector<std::size_t>{0, 2});
  CHECK(skip.count() == 1);
  BadSampleLog raise(BadSamplePolicy::kRaise);
  CHECK_THAT(data_error([&] { keep_supervised_rows(rows, {0, 1, 2}, raise, "d/data.jsonl"); }),
             Catch::Contains("d/data.jsonl:7 (row 1): no supervised token"));
  CHECK_THROWS_AS(parse_bad_sample_policy("ignore"), Error);
}

TEST_CASE("files source waits for the writer's lock, bounded", "[data][files]") {
  const auto dir = scratch_dir("files_lock");
  auto rows = good_dir(dir, 2);
  const std::string lock = hs_file_path(dir, 0) + ".lock";
  // A lock file nobody holds (left by a finished writer) does not delay the read.
  std::ofstream(lock).put('x');
  FileFeatureSource source(dir, rows, kA, kH, std::make_shared<BadSampleLog>(BadSamplePolicy::kRaise), 0.3);
  CHECK_FALSE(source.read(0).tensors.empty());
  // Held: the reader gives up after the timeout with a clear message.
  const int fd = ::open(lock.c_str(), O_RDWR);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  CHECK_THAT(data_error([&] { source.read(0); }), Catch::Contains("still locked"));
  // Released while the reader waits: the read goes through.
  std::thread release([fd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::flock(fd, LOCK_UN);
  });
  FileFeatureSource patient(dir, rows, kA, kH, nullptr, 5.0);
  CHECK_FALSE(patient.read(0).tensors.empty());
  release.join();
  ::close(fd);
}
