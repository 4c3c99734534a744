// Draft vocabulary mapping (speculators/train/vocab_mapping.py): selection order and ties, padding,
// d2t offsets, the .npy round trip, validation errors that name the files, frequency counting and
// files.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "speculators/error.h"
#include "speculators/tensor_io.h"
#include "speculators/vocab.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("vocab_test_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<std::int64_t> to_vec(const torch::Tensor& t) {
  const auto c = t.to(torch::kLong).contiguous();
  return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
}

std::vector<std::int64_t> true_ids(const torch::Tensor& t2d) { return to_vec(t2d.nonzero().flatten()); }

}  // namespace

TEST_CASE("most frequent first, ties by the lower id, then sorted ascending", "[vocab]") {
  // (-freq, id) order: 3 (10), 5 (10), 1 (4), 7 (4), 9 (1) -> first three: 3, 5, 1.
  const TokenFrequencies freq = {{5, 10}, {3, 10}, {7, 4}, {1, 4}, {9, 1}};
  const auto m = build_vocab_mapping(freq, 12, 3);
  REQUIRE(true_ids(m.t2d) == std::vector<std::int64_t>{1, 3, 5});
  REQUIRE(to_vec(m.d2t) == std::vector<std::int64_t>{1, 2, 3});  // selected - arange(3)
  REQUIRE(m.d2t.scalar_type() == torch::kLong);
  REQUIRE(m.t2d.scalar_type() == torch::kBool);
  REQUIRE(m.t2d.size(0) == 12);
  REQUIRE(to_vec(draft_to_target_ids(m)) == std::vector<std::int64_t>{1, 3, 5});
}

TEST_CASE("too few distinct tokens: padded with 0, 1, 2, ... not yet chosen", "[vocab]") {
  SECTION("padding ids below the chosen ones") {
    const auto m = build_vocab_mapping({{4, 2}, {6, 1}}, 10, 5);
    REQUIRE(true_ids(m.t2d) == std::vector<std::int64_t>{0, 1, 2, 4, 6});
    REQUIRE(to_vec(m.d2t) == std::vector<std::int64_t>{0, 0, 0, 1, 2});
  }
  SECTION("padding skips ids already chosen") {
    const auto m = build_vocab_mapping({{0, 5}, {2, 1}}, 10, 4);
    REQUIRE(true_ids(m.t2d) == std::vector<std::int64_t>{0, 1, 2, 3});
    REQUIRE(to_vec(m.d2t) == std::vector<std::int64_t>{0, 0, 0, 0});
  }
  SECTION("no frequencies at all") {
    const auto m = build_vocab_mapping({}, 8, 3);
    REQUIRE(true_ids(m.t2d) == std::vector<std::int64_t>{0, 1, 2});
  }
}

TEST_CASE("bad frequencies and sizes are rejected", "[vocab]") {
  REQUIRE_THROWS_WITH(build_vocab_mapping({{12, 1}}, 12, 3), Catch::Contains("token id 12"));
  REQUIRE_THROWS_WITH(build_vocab_mapping({{-1, 1}}, 12, 3), Catch::Contains("token id -1"));
  REQUIRE_THROWS_WITH(build_vocab_mapping({{1, -3}}, 12, 3), Catch::Contains("negative count"));
  REQUIRE_THROWS_WITH(build_vocab_mapping({}, 12, 13), Catch::Contains("draft_vocab_size"));
}

TEST_CASE("frequencies count input ids where loss_mask is 1", "[vocab]") {
  TokenFrequencies counts;
  count_token_frequencies(torch::tensor({5, 3, 5, 7}), torch::tensor({1, 0, 1, 1}), counts);
  count_token_frequencies(torch::tensor({3, 7}), torch::tensor({1, 0}), counts);
  REQUIRE(counts == TokenFrequencies{{3, 1}, {5, 2}, {7, 1}});
  REQUIRE_THROWS_AS(count_token_frequencies(torch::tensor({1, 2}), torch::tensor({1}), counts), Error);
}

TEST_CASE("d2t.npy / t2d.npy round trip and validation", "[vocab]") {
  TempDir dir;
  const auto m = build_vocab_mapping({{7, 3}, {2, 9}, {11, 1}}, 16, 4);
  save_vocab_mapping(m, dir.path.string());
  const auto d2t = load_npy(dir.file("d2t.npy"));
  const auto t2d = load_npy(dir.file("t2d.npy"));
  REQUIRE(d2t.scalar_type() == torch::kLong);
  REQUIRE(t2d.scalar_type() == torch::kBool);
  const auto back = load_vocab_mapping(dir.file("d2t.npy"), dir.file("t2d.npy"));
  REQUIRE(torch::equal(back.d2t, m.d2t));
  REQUIRE(torch::equal(back.t2d, m.t2d));
  validate_vocab_mapping(back, 16, 4);

  SECTION("both paths or neither") {
    REQUIRE(load_vocab_mapping("", "").empty());
    REQUIRE_THROWS_WITH(load_vocab_mapping(dir.file("d2t.npy"), ""),
                        Catch::Contains("d2t_path") && Catch::Contains("t2d_path"));
  }
  SECTION("t2d length must be the verifier vocab size") {
    REQUIRE_THROWS_WITH(validate_vocab_mapping(back, 17, 4, "a/d2t.npy", "a/t2d.npy"),
                        Catch::Contains("a/t2d.npy") && Catch::Contains("17"));
  }
  SECTION("t2d must select draft_vocab_size ids") {
    REQUIRE_THROWS_WITH(validate_vocab_mapping(back, 16, 3, "a/d2t.npy", "a/t2d.npy"),
                        Catch::Contains("a/t2d.npy") && Catch::Contains("4 true entries"));
  }
  SECTION("d2t length must be draft_vocab_size") {
    VocabMapping bad = back;
    bad.d2t = back.d2t.slice(0, 0, 3);
    REQUIRE_THROWS_WITH(validate_vocab_mapping(bad, 16, 4, "a/d2t.npy", "a/t2d.npy"), Catch::Contains("a/d2t.npy"));
  }
  SECTION("d2t must point at the t2d ids") {
    VocabMapping bad = back;
    bad.d2t = back.d2t.clone();
    bad.d2t[1] += 1;
    REQUIRE_THROWS_WITH(validate_vocab_mapping(bad, 16, 4, "a/d2t.npy", "a/t2d.npy"),
                        Catch::Contains("a/d2t.npy") && Catch::Contains("draft id 1"));
  }
  SECTION("integer t2d and narrower d2t are converted") {
    save_npy(dir.file("t2d_int.npy"), m.t2d.to(torch::kUInt8));
    save_npy(dir.file("d2t_i32.npy"), m.d2t.to(torch::kInt));
    const auto converted = load_vocab_mapping(dir.file("d2t_i32.npy"), dir.file("t2d_int.npy"));
    REQUIRE(converted.d2t.scalar_type() == torch::kLong);
    REQUIRE(torch::equal(converted.t2d, m.t2d));
  }
  SECTION("a float d2t is rejected naming the file") {
    save_npy(dir.file("d2t_f.npy"), m.d2t.to(torch::kFloat));
    REQUIRE_THROWS_WITH(load_vocab_mapping(dir.file("d2t_f.npy"), dir.file("t2d.npy")),
                        Catch::Contains("d2t_f.npy"));
  }
}

TEST_CASE("token frequency files: torch.save pickle, npy and JSON", "[vocab]") {
  TempDir dir;
  const TokenFrequencies freq = {{0, 3}, {17, 1}, {128000, 42}};
  write_token_frequencies(dir.file("token_freq.pt"), freq);
  REQUIRE(read_token_frequencies(dir.file("token_freq.pt")) == freq);
  write_token_frequencies(dir.file("token_freq.json"), freq);
  REQUIRE(read_token_frequencies(dir.file("token_freq.json")) == freq);
  write_token_frequencies(dir.file("token_freq.npy"), freq);
  REQUIRE(load_npy(dir.file("token_freq.npy")).size(0) == 128001);
  REQUIRE(read_token_frequencies(dir.file("token_freq.npy")) == freq);
  save_npy(dir.file("float_freq.npy"), torch::ones({4}));
  REQUIRE_THROWS_WITH(read_token_frequencies(dir.file("float_freq.npy")), Catch::Contains("float_freq.npy"));

  std::ofstream(dir.file("bad.json")) << "{\"abc\": 1}";
  REQUIRE_THROWS_WITH(read_token_frequencies(dir.file("bad.json")),
                      Catch::Contains("bad.json") && Catch::Contains("'abc'"));
  REQUIRE_THROWS_WITH(read_token_frequencies(dir.file("missing.pt")), Catch::Contains("missing.pt"));
  // A file that is not JSON, or JSON nested too deep, is bad data (exit 4) naming the file.
  std::ofstream(dir.file("junk.json")) << "junk";
  std::ofstream(dir.file("deep.json")) << std::string(50000, '[') << std::string(50000, ']');
  for (const char* name : {"junk.json", "deep.json"}) {
    try {
      read_token_frequencies(dir.file(name));
      FAIL("no error for " << name);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::kData);
      CHECK_THAT(e.what(), Catch::StartsWith(dir.file(name) + ": invalid JSON"));
    }
  }
}
