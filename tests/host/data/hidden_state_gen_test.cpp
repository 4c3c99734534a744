// speculators-datagen hidden-states: files in the layout of speculators/data_generation/offline.py
// holding the verifier's own residual streams, loss-masked token counts
// (speculators/train/vocab_mapping.py), resume and --validate, and the same batches through the
// files and online sources (up to dtype rounding).
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "../../error_of.h"
#include "data/feature_files.h"
#include "data/feature_source.h"
#include "data/hidden_state_gen.h"
#include "data/loader.h"
#include "data_util.h"
#include "speculators/error.h"
#include "speculators/vocab.h"
#include "tools/make_verifier.h"

using namespace speculators;
using namespace speculators::test;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  std::string verifier_dir, data_dir;
  std::vector<TokenRow> rows;
};

// A 4-layer verifier (H 32, V 64) and 7 rows of 3..9 tokens.
Fixture make_fixture(const std::string& name) {
  Fixture f;
  const auto root = scratch_dir(name);
  f.verifier_dir = root + "/verifier";
  f.data_dir = root + "/data";
  fs::create_directories(f.data_dir);
  MakeVerifierOptions o;
  o.hidden_size = 32;
  o.num_layers = 4;
  o.vocab_size = 64;
  torch::manual_seed(11);
  VerifierModel m(make_verifier_config(o));
  nn::init_weights(*m, 0.2);
  save_verifier(*m, f.verifier_dir);
  for (int r = 0; r < 7; ++r) {
    TokenRow row;
    for (int t = 0; t < 3 + r; ++t) {
      row.input_ids.push_back((r * 13 + t * 5) % 64);
      row.loss_mask.push_back(t >= 2 ? 1 : 0);
    }
    f.rows.push_back(row);
  }
  write_jsonl(f.data_dir, f.rows);
  return f;
}

HiddenStateGenOptions options_for(const Fixture& f, const std::string& dtype) {
  HiddenStateGenOptions o;
  o.verifier_dir = f.verifier_dir;
  o.data_dir = f.data_dir;
  o.dtype = dtype;
  o.batch_tokens = 16;  // several forwards, several rows each
  o.progress = false;
  return o;
}

}  // namespace

TEST_CASE("hidden-states writes the verifier's residual streams in the reference layout", "[datagen][files]") {
  auto f = make_fixture("hsgen_layout");
  auto o = options_for(f, "fp32");
  o.draft_vocab_size = 8;
  const auto report = generate_hidden_states(o);
  CHECK(report.written == 7);
  CHECK(report.layer_ids == std::vector<std::int64_t>{2, 2, 1, 4});  // [2, n/2, n-3] + n for n = 4
  VerifierModel verifier = load_verifier(f.verifier_dir);
  verifier->eval();
  torch::NoGradGuard no_grad;
  for (std::size_t r = 0; r < f.rows.size(); ++r) {
    auto file = load_safetensors(hs_file_path(f.data_dir, r));
    REQUIRE(file.size() == 2);
    const auto T = static_cast<std::int64_t>(f.rows[r].input_ids.size());
    const auto& hs = file.at("hidden_states");
    CHECK(hs.dtype() == torch::kFloat32);
    REQUIRE(hs.sizes() == torch::IntArrayRef({T, 4, 32}));
    CHECK(file.at("token_ids").dtype() == torch::kInt64);
    CHECK(torch::equal(file.at("token_ids"), torch::tensor(f.rows[r].input_ids, torch::kInt64)));
    // The row alone through the verifier (no packing with other rows) gives the same streams.
    auto ids = torch::tensor(f.rows[r].input_ids, torch::kInt64).view({1, T});
    auto out = verifier->forward(ids, torch::arange(T).view({1, T}), torch::Tensor(), {2, 2, 1, 4}, false);
    for (int slot = 0; slot < 4; ++slot) CHECK(torch::allclose(hs.select(1, slot), out.hidden_states[slot][0], 1e-4, 1e-5));
  }
  // counts of input ids where loss_mask == 1, over every row.
  TokenFrequencies want;
  for (const auto& row : f.rows) {
    for (std::size_t t = 0; t < row.input_ids.size(); ++t) {
      if (row.loss_mask[t] == 1) ++want[row.input_ids[t]];
    }
  }
  CHECK(read_token_frequencies(f.data_dir + "/token_freq.npy") == want);
  auto mapping = load_vocab_mapping(f.data_dir + "/d2t.npy", f.data_dir + "/t2d.npy");
  CHECK(mapping.d2t.size(0) == 8);
  CHECK(mapping.t2d.sum().item<std::int64_t>() == 8);
}

TEST_CASE("hidden-states resumes: valid files are kept, broken or missing ones rewritten", "[datagen][files]") {
  auto f = make_fixture("hsgen_resume");
  auto o = options_for(f, "bf16");
  CHECK(generate_hidden_states(o).written == 7);
  auto again = generate_hidden_states(o);
  CHECK(again.written == 0);
  CHECK(again.kept == 7);
  fs::remove(hs_file_path(f.data_dir, 2));
  fs::resize_file(hs_file_path(f.data_dir, 4), 40);
  write_hs(f.data_dir, 5, torch::full({8, 4, 32}, NAN).to(torch::kBFloat16), f.rows[5].input_ids);
  // A stale temporary of a killed writer (pid 0x7fffffff does not exist) is removed.
  const std::string stale = hs_file_path(f.data_dir, 6) + ".tmp.2147483647";
  std::ofstream(stale) << "partial";
  // A lock left by a writer killed between its rename and its unlink (file 1 exists and is valid)
  // is removed; a lock someone still holds stays.
  const std::string stale_lock = hs_file_path(f.data_dir, 1) + ".lock";
  std::ofstream(stale_lock) << "";
  const std::string held_lock = hs_file_path(f.data_dir, 3) + ".lock";
  const int held = ::open(held_lock.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  auto resumed = generate_hidden_states(o);
  CHECK_FALSE(fs::exists(stale_lock));
  CHECK(fs::exists(held_lock));
  ::flock(held, LOCK_UN);
  ::close(held);
  fs::remove(held_lock);
  CHECK(resumed.written == 2);      // rows 2 and 4; row 5's NaN is only seen with --validate
  CHECK(resumed.regenerated == 1);
  CHECK_FALSE(fs::exists(stale));
  o.validate = true;
  auto validated = generate_hidden_states(o);
  CHECK(validated.written == 1);
  CHECK(validated.regenerated == 1);
  CHECK(torch::isfinite(load_safetensors(hs_file_path(f.data_dir, 5)).at("hidden_states")).all().item<bool>());
  CHECK(generate_hidden_states(o).written == 0);
}

TEST_CASE("hidden-states names bad options", "[datagen][files]") {
  auto f = make_fixture("hsgen_bad");
  auto o = options_for(f, "fp16");
  CHECK_THAT(error_of([&] { generate_hidden_states(o); }, ExitCode::kUsage), Catch::Contains("--dtype"));
  o = options_for(f, "fp32");
  o.target_layer_ids = {1, 5};
  CHECK_THAT(error_of([&] { generate_hidden_states(o); }, ExitCode::kUsage), Catch::Contains("5 is outside [0, 4]"));
  o = options_for(f, "fp32");
  o.batch_tokens = 0;
  CHECK_THAT(error_of([&] { generate_hidden_states(o); }, ExitCode::kUsage), Catch::Contains("--batch-tokens"));
}

TEST_CASE("the files and online sources give the same batches", "[datagen][files][data]") {
  auto f = make_fixture("hsgen_same");
  const std::vector<std::int64_t> aux = {1, 3};
  IdentityAlgorithm algo;
  for (const std::string dtype : {"fp32", "bf16"}) {
    fs::remove_all(f.data_dir + "/hidden_states");
    auto o = options_for(f, dtype);
    o.target_layer_ids = aux;
    generate_hidden_states(o);
    FileFeatureSource files(f.data_dir, f.rows, 2, 32, nullptr);
    OnlineFeatureSource online(load_verifier(f.verifier_dir), f.rows, aux, 1 << 20, 12);
    LoaderOptions workers;
    workers.num_workers = 2;
    Loader from_files(files, algo, {0, 1, 2, 3, 4, 5, 6}, 20, 0.05, 3, true, workers);
    Loader from_online(online, algo, {0, 1, 2, 3, 4, 5, 6}, 20, 0.05, 3, true);
    const double tol = dtype == "fp32" ? 1e-5 : 2e-2;
    for (std::int64_t epoch : {0, 1}) {
      from_files.start_epoch(epoch);
      from_online.start_epoch(epoch);
      std::size_t n = 0;
      while (auto a = from_files.next()) {
        auto b = from_online.next();
        REQUIRE(b);
        REQUIRE(a->size() == b->size());
        for (const auto& [key, t] : *a) {
          INFO(dtype << " " << key);
          if (t.is_floating_point()) {
            CHECK(torch::allclose(t, b->at(key), tol, tol));
          } else {
            CHECK(torch::equal(t, b->at(key)));
          }
        }
        ++n;
      }
      CHECK_FALSE(from_online.next());
      CHECK(n == from_files.num_batches());
    }
  }
}

// A row longer than the packed row is clipped before the verifier runs: its sample holds the
// first max_row_tokens tokens, with the features the verifier gives for those tokens alone
// (causal attention: later tokens cannot change them), computed here on the short row directly.
TEST_CASE("online: a row longer than the packed row reaches the verifier clipped", "[data][online]") {
  const auto f = make_fixture("online_clip");
  TokenRow long_row;
  for (int t = 0; t < 20000; ++t) {
    long_row.input_ids.push_back((t * 7) % 64);
    long_row.loss_mask.push_back(1);
  }
  TokenRow head = long_row;
  head.input_ids.resize(17);
  head.loss_mask.resize(17);
  OnlineFeatureSource online(load_verifier(f.verifier_dir), {long_row, f.rows[0]}, {1, 2}, 1 << 20, 64, 17);
  const auto samples = online.get({0, 1});
  REQUIRE(samples.size() == 2);
  CHECK(online.length(0) == 20000);  // packing still sees the row's own length
  const auto& clipped = samples[0].tensors;
  REQUIRE(clipped.at("input_ids").size(0) == 17);
  CHECK(clipped.at("loss_mask").size(0) == 17);
  CHECK(samples[1].tensors.at("input_ids").size(0) == static_cast<std::int64_t>(f.rows[0].input_ids.size()));

  VerifierModel verifier = load_verifier(f.verifier_dir);
  verifier->eval();
  const auto direct = verifier_features(*verifier, {&head}, {1, 2, 4})[0];  // [17, 3, H]
  CHECK(torch::equal(clipped.at("input_ids"), torch::tensor(head.input_ids, torch::kInt64)));
  // Equal up to fp32 rounding, relative to the features' scale: packed with another document, the
  // row's attention sums run over a different key range than on the short row alone.
  const auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() <= 1e-6 * b.abs().max().item<double>();
  };
  CHECK(close(clipped.at("hidden_states"), direct.narrow(1, 0, 2).reshape({17, -1})));
  CHECK(close(clipped.at("verifier_last_hidden_states"), direct.select(1, 2)));
}
