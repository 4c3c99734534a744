// Json: parsing, typed access errors, and the byte format of Python's
// json.dumps(obj, indent=2, sort_keys=True) that config.json uses.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include "speculators/args.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/schema.h"

using namespace speculators;

TEST_CASE("floats print as Python's repr", "[json]") {
  // Expected strings are what CPython's repr() prints for these values.
  CHECK(python_float_repr(1e-05) == "1e-05");
  CHECK(python_float_repr(1e-06) == "1e-06");
  CHECK(python_float_repr(500000.0) == "500000.0");
  CHECK(python_float_repr(0.0) == "0.0");
  CHECK(python_float_repr(-0.0) == "-0.0");
  CHECK(python_float_repr(0.02) == "0.02");
  CHECK(python_float_repr(0.1) == "0.1");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(1.5e-07) == "1.5e-07");
  CHECK(python_float_repr(8.0) == "8.0");
  CHECK(python_float_repr(-2.5) == "-2.5");
  CHECK(python_float_repr(3.4445) == "3.4445");
  CHECK(python_float_repr(1.0 / 3.0) == "0.3333333333333333");
  CHECK(python_float_repr(1e15) == "1000000000000000.0");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(1e22) == "1e+22");
  CHECK(python_float_repr(123456789.123) == "123456789.123");
  CHECK(python_float_repr(1000000.0) == "1000000.0");
}

TEST_CASE("dump_python writes json.dumps(indent=2, sort_keys=True) bytes", "[json]") {
  Json j = Json::object();
  j["b"] = Json(Json::Array{Json(1), Json(2.5)});
  j["a"] = Json::object({{"y", true}, {"x", nullptr}});
  j["e"] = Json::array();
  j["f"] = Json::object();
  j["s"] = "h\xc3\xa9\"\n";
  j["eps"] = 1e-05;
  j["theta"] = 500000.0;
  const std::string expected =
      "{\n"
      "  \"a\": {\n"
      "    \"x\": null,\n"
      "    \"y\": true\n"
      "  },\n"
      "  \"b\": [\n"
      "    1,\n"
      "    2.5\n"
      "  ],\n"
      "  \"e\": [],\n"
      "  \"eps\": 1e-05,\n"
      "  \"f\": {},\n"
      "  \"s\": \"h\\u00e9\\\"\\n\",\n"
      "  \"theta\": 500000.0\n"
      "}\n";
  CHECK(j.dump_python() == expected);
  CHECK(j.dump() == "{\"a\":{\"x\":null,\"y\":true},\"b\":[1,2.5],\"e\":[],\"eps\":1e-05,\"f\":{},"
                    "\"s\":\"h\\u00e9\\\"\\n\",\"theta\":500000.0}");
}

TEST_CASE("parsing keeps integers and floats apart and round-trips bytes", "[json]") {
  const std::string text = "{\n  \"rope_theta\": 500000.0,\n  \"sliding_window\": 2048,\n  \"x\": [\n    1e-05\n  ]\n}\n";
  Json j = Json::parse(text);
  CHECK(j.at("sliding_window").is_int());
  CHECK(j.at("rope_theta").is_float());
  CHECK(j.dump_python() == text);
  CHECK(Json::parse("[1, 2, 3]").as_int_list() == std::vector<std::int64_t>{1, 2, 3});
}

TEST_CASE("bad JSON and wrong types are errors that say what was expected", "[json]") {
  CHECK_THROWS_WITH(Json::parse("{\"a\": }", "cfg.json"), Catch::Contains("cfg.json"));
  CHECK_THROWS_WITH(Json("x").as_int(), Catch::Contains("integer") && Catch::Contains("string"));
  CHECK_THROWS_WITH(Json::object().at("missing"), Catch::Contains("missing"));
  CHECK_THROWS_WITH(Json::read_file("/nonexistent/config.json"), Catch::Contains("/nonexistent/config.json"));
}

TEST_CASE("untrusted JSON: deep nesting, huge numbers, oversized files and FIFOs are errors naming the file",
          "[json]") {
  // 40,000 levels crashed the recursive conversion (stack overflow) before the depth limit.
  const std::string deep = std::string(40000, '[') + std::string(40000, ']');
  CHECK_THROWS_WITH(Json::parse(deep, "config.json"),
                    Catch::Contains("config.json: invalid JSON: nested deeper than 256 levels at line 1, column 257"));
  // Brackets inside strings do not count; 256 levels are fine.
  CHECK(Json::parse("{\"a\": \"" + std::string(1000, '[') + "\"}", "x").at("a").as_string().size() == 1000);
  CHECK_NOTHROW(Json::parse(std::string(256, '[') + std::string(256, ']'), "x"));
  CHECK_THROWS_WITH(Json::parse("{\"rope_theta\": 1e400}", "config.json"),
                    Catch::Contains("config.json: invalid JSON") && Catch::Contains("1e400"));
  const auto dir = std::filesystem::temp_directory_path() / cat("json_test_", ::getpid());
  std::filesystem::create_directories(dir);
  const auto big = dir / "big.json";
  std::ofstream(big) << "[" << std::string(2000, ' ') << "]";
  CHECK_THROWS_WITH(Json::read_file(big.string(), 1000),
                    Catch::Contains("big.json: 2002 bytes is larger than the 1000 bytes"));
  CHECK(Json::read_file(big.string()).size() == 0);
  const auto fifo = dir / "fifo.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(Json::read_file(fifo.string()), Catch::Contains("fifo.json: cannot open: not a regular file"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("write_file_atomic replaces a file and leaves no temporary", "[json]") {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / "speculators_json_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto path = (dir / "config.json").string();
  write_file_atomic(path, "old\n");
  write_file_atomic(path, "new\n");
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  CHECK(s.str() == "new\n");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  CHECK_THROWS_AS(write_file_atomic((dir / "no" / "such" / "dir.json").string(), "x"), Error);
}

TEST_CASE("options coerce values and name what is wrong", "[schema]") {
  Option layers = opt_int("num_layers", 1, "layers");
  CHECK(layers.flag() == "--num-layers");
  CHECK(layers.parse_flag_value("3", "flag").as_int() == 3);
  CHECK_THROWS_WITH(layers.parse_flag_value("3.5", "flag --num-layers"), Catch::Contains("--num-layers"));
  Option lr = opt_float("lr", 1e-4, "lr");
  CHECK(lr.coerce(Json(1), "job.yaml").is_float());  // an int in YAML is a valid float
  Option arch = opt_string("draft_arch", "llama", "arch", "draft", {"llama", "qwen3"});
  CHECK_THROWS_WITH(arch.coerce(Json("mistral"), "job.yaml:4"), Catch::Contains("llama, qwen3"));
  Option ids = opt_int_list("target_layer_ids", Json(), "ids");
  CHECK(ids.parse_flag_value("2,16 29", "flag").as_int_list() == std::vector<std::int64_t>{2, 16, 29});
  CHECK(ids.coerce(Json(5), "job").as_int_list() == std::vector<std::int64_t>{5});
  Option flag = opt_bool("fc_norm", false, "");
  CHECK(flag.parse_flag_value("no", "flag").as_bool() == false);
  CHECK_THROWS_AS(flag.coerce(Json("yes"), "job"), Error);
  CHECK(closest_match("learning_rat", {"lr", "learning_rate", "epochs"}) == "learning_rate");
  CHECK(closest_match("zzzzzz", {"lr", "epochs"}).empty());
}

TEST_CASE("args getters name the key at fault", "[args]") {
  Args args(Json::object({{"epochs", 3}, {"lr", 0.5}, {"name", "x"}, {"unset", nullptr}}));
  CHECK(args.get_int("epochs") == 3);
  CHECK(args.get_double("epochs") == 3.0);
  CHECK_FALSE(args.has("unset"));
  CHECK_FALSE(args.get_optional_int("unset").has_value());
  CHECK_THROWS_WITH(args.get_int("name"), Catch::Contains("\"name\"") && Catch::Contains("integer"));
  CHECK_THROWS_WITH(args.get("nope"), Catch::Contains("nope"));
}

TEST_CASE("optional getters and with_defaults: absent and null read as unset; defaults fill only absent keys",
          "[args]") {
  Args args(Json::object({{"ratio", 0.25}, {"path", "a.npy"}, {"ids", Json(std::vector<std::int64_t>{1, 3})},
                          {"window", nullptr}}));
  CHECK(args.get_optional_double("ratio") == std::optional<double>(0.25));
  CHECK(args.get_optional_string("path") == std::optional<std::string>("a.npy"));
  CHECK(args.get_optional_int_list("ids") == std::optional<std::vector<std::int64_t>>({1, 3}));
  CHECK_FALSE(args.get_optional_string("window").has_value());
  CHECK_FALSE(args.get_optional_double("absent").has_value());
  CHECK_THROWS_WITH(args.get_optional_string("ratio"), Catch::Contains("\"ratio\"") && Catch::Contains("string"));

  const Schema schema = {opt_int("window", 2048, ""), opt_int("steps", 3, ""), opt_float("ratio", 0.9, ""),
                         opt_string("act", Json(), "")};
  const Args full = args.with_defaults(schema);
  CHECK(full.json().at("window").is_null());  // a stated null stays: "unset" is a value
  CHECK(full.get_int("steps") == 3);          // absent: the declared default
  CHECK(full.get_double("ratio") == 0.25);    // stated: kept
  CHECK(full.json().contains("act"));
  CHECK_FALSE(full.has("act"));               // declared default null
  CHECK(full.get_string("path") == "a.npy");  // keys outside the schema stay
  CHECK_FALSE(args.json().contains("steps"));  // the original is unchanged
}
