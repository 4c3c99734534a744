// Job resolution: precedence flag > YAML > default, groups, unknown keys, types, run.yaml.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "speculators/error.h"
#include "speculators/log.h"
#include "tools/job.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

std::string write_yaml(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / "speculators_job_test";
  fs::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

Schema test_schema() {
  return merge_schemas(host_schema(),
                       {opt_int("block_size", 8, "block", "draft"), opt_bool("norm_output", true, "n", "draft"),
                        opt_string("loss_fn", "kl_div", "loss", "loss"), opt_int("num_layers", 1, "", "draft")},
                       "testalgo");
}

std::string message_of(const std::function<void()>& f, ExitCode* code = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("defaults, YAML and flags resolve with flag > YAML > default", "[job]") {
  auto path = write_yaml("prec.yaml",
                         "train:\n  seed: 7\n  optimizer:\n    lr: 0.5\n  draft:\n    block_size: 4\n"
                         "  trainer:\n    epochs: 3\n");
  auto cmd = parse_command_line({path, "--epochs", "9", "--no-norm-output"});
  Args args = resolve_job(cmd, test_schema());
  CHECK(args.get_int("seed") == 7);                 // YAML over default 42
  CHECK(args.get_double("lr") == Approx(0.5));      // YAML
  CHECK(args.get_int("block_size") == 4);           // YAML over plugin default 8
  CHECK(args.get_int("epochs") == 9);               // flag over YAML
  CHECK(args.get_bool("norm_output") == false);     // --no- form
  CHECK(args.get_int("num_layers") == 1);           // plugin restated the host default
  CHECK(args.get_double("weight_decay") == Approx(0.01));  // untouched default
}

TEST_CASE("a bare mapping works like a train: block", "[job]") {
  auto path = write_yaml("bare.yaml", "seed: 3\nlr: 0.25\ndata:\n  total_seq_len: 128\n  source: online\n");
  Args args = resolve_job(parse_command_line({"--config", path}), test_schema());
  CHECK(args.get_int("seed") == 3);
  CHECK(args.get_double("lr") == Approx(0.25));
  CHECK(args.get_int("total_seq_len") == 128);
  CHECK(args.get_string("data_source") == "online");  // data.source is data_source
}

TEST_CASE("an unknown YAML key names the file, line and the closest valid key", "[job]") {
  auto path = write_yaml("typo.yaml", "train:\n  optimizer:\n    learning_rat: 0.1\n    lrr: 0.2\n");
  ExitCode code{};
  auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); }, &code);
  CHECK(code == ExitCode::kUsage);
  CHECK_THAT(msg, Catch::Contains("typo.yaml:3"));
  CHECK_THAT(msg, Catch::Contains("learning_rat"));
  auto path2 = write_yaml("typo2.yaml", "train:\n  optimizer:\n    lrr: 0.2\n");
  CHECK_THAT(message_of([&] { resolve_job(parse_command_line({path2}), test_schema()); }),
             Catch::Contains("did you mean \"lr\""));
}

TEST_CASE("a key in the wrong group is an error naming its group", "[job]") {
  auto path = write_yaml("group.yaml", "train:\n  data:\n    lr: 0.1\n");
  auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); });
  CHECK_THAT(msg, Catch::Contains("belongs to group \"optimizer\""));
}

TEST_CASE("wrong types are errors naming the key", "[job]") {
  auto path = write_yaml("type.yaml", "train:\n  trainer:\n    epochs: many\n");
  auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); });
  CHECK_THAT(msg, Catch::Contains("type.yaml:3"));
  CHECK_THAT(msg, Catch::Contains("epochs"));
  CHECK_THAT(message_of([&] { resolve_job(parse_command_line({"--epochs", "x"}), test_schema()); }),
             Catch::Contains("--epochs"));
  CHECK_THAT(message_of([&] { resolve_job(parse_command_line({"--scheduler-type", "step"}), test_schema()); }),
             Catch::Contains("linear, cosine, none"));
}

TEST_CASE("a YAML number out of range or not finite is a usage error naming the file, line and option", "[job]") {
  // 1e400 is no double: YAML reads it as text, which is not a number.
  const std::pair<const char*, std::string> cases[] = {{"1e400", "expected a number for lr, got \"1e400\""},
                                                        {".nan", "--lr must be a finite number"},
                                                        {".inf", "--lr must be a finite number"},
                                                        {"-1", "--lr must be > 0, got -1"}};
  for (const auto& [value, expected] : cases) {
    INFO(value);
    auto path = write_yaml("lr.yaml", cat("train:\n  optimizer:\n    lr: ", value, "\n"));
    ExitCode code = ExitCode::kFailure;
    auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); }, &code);
    CHECK(code == ExitCode::kUsage);
    CHECK_THAT(msg, Catch::StartsWith(path + ":3: train.optimizer.lr: " + expected));
  }
}

TEST_CASE("an unknown flag suggests the closest flag", "[job]") {
  ExitCode code{};
  auto msg = message_of([&] { resolve_job(parse_command_line({"--epoch", "3"}), test_schema()); }, &code);
  CHECK(code == ExitCode::kUsage);
  CHECK_THAT(msg, Catch::Contains("did you mean --epochs"));
}

TEST_CASE("malformed YAML is reported with its position", "[job]") {
  auto path = write_yaml("bad.yaml", "train:\n  seed: [1, 2\n");
  ExitCode code{};
  auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); }, &code);
  CHECK(code == ExitCode::kUsage);
  CHECK_THAT(msg, Catch::Contains("bad.yaml"));
  CHECK_THAT(msg, Catch::Contains("invalid YAML"));
}

TEST_CASE("a job file with a non-scalar key or 40,000 nested lists is a usage error", "[job]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"seq_key.yaml", "train:\n  [a, b]: 1\n"},
      {"map_key.yaml", "? {x: 1}\n: 2\n"},
      {"deep.yaml", "train:\n  seed: " + std::string(40000, '[') + std::string(40000, ']') + "\n"},
  };
  for (const auto& [name, text] : cases) {
    INFO(name);
    auto path = write_yaml(name, text);
    ExitCode code{};
    auto msg = message_of([&] { resolve_job(parse_command_line({path}), test_schema()); }, &code);
    CHECK(code == ExitCode::kUsage);
    CHECK_THAT(msg, Catch::Contains(name));
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("list flags take several words or commas", "[job]") {
  Args a = resolve_job(parse_command_line({"--target-layer-ids", "2", "16", "29", "--seed", "1"}), test_schema());
  CHECK(a.get_int_list("target_layer_ids") == std::vector<std::int64_t>{2, 16, 29});
  Args b = resolve_job(parse_command_line({"--target-layer-ids=1,3"}), test_schema());
  CHECK(b.get_int_list("target_layer_ids") == std::vector<std::int64_t>{1, 3});
}

TEST_CASE("the dumped job re-loads to the same values", "[job]") {
  Schema schema = test_schema();
  Args a = resolve_job(parse_command_line({"--epochs", "5", "--lr", "0.003", "--block-size", "2",
                                           "--target-layer-ids", "1", "2", "--loss-fn", "{\"ce\": 0.5}",
                                           "--verifier-name-or-path", "dir with space"}),
                       schema);
  std::string yaml = job_to_yaml(a, schema);
  CHECK_THAT(yaml, Catch::StartsWith("train:"));
  CHECK_THAT(yaml, !Catch::Contains("weight_decay"));  // defaults are left out
  auto path = write_yaml("dump.yaml", yaml);
  Args b = resolve_job(parse_command_line({path}), schema);
  CHECK(b.json() == a.json());
}

TEST_CASE("a plugin option whose type clashes with the host's is a plugin error", "[job]") {
  ExitCode code{};
  auto msg = message_of([&] { merge_schemas(host_schema(), {opt_string("epochs", "x", "")}, "bad"); }, &code);
  CHECK(code == ExitCode::kPlugin);
  CHECK_THAT(msg, Catch::Contains("epochs"));
}
