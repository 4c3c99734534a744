// .npy reading and writing: round trips for every supported dtype, byte-exact comparison with
// what numpy's np.save writes (format 1.0: magic, version, u16 header length, dict repr padded
// with spaces and '\n' to a multiple of 64 bytes), hand-built v1/v2/v3 files, and every
// malformed file the reader refuses.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "io_test_util.h"
#include "speculators/tensor_io.h"

using Catch::Matchers::Contains;
using speculators::test::error_message;
using speculators::test::le_bytes;
using speculators::test::read_bytes;
using speculators::test::ScratchDir;
using speculators::test::write_bytes;

namespace {

const std::string kMagic("\x93NUMPY", 6);

// A v1.0 file with `dict` as header text; no alignment padding, which readers must not need.
std::string npy_v1(const std::string& dict, const std::string& data) {
  const std::string header = dict + "\n";
  return kMagic + std::string("\x01\x00", 2) + le_bytes(header.size(), 2) + header + data;
}

}  // namespace

TEST_CASE("npy round trip keeps every dtype, shape and value", "[npy]") {
  ScratchDir dir;
  const std::vector<torch::ScalarType> types = {torch::kBool, torch::kChar,  torch::kByte,  torch::kShort, torch::kInt,
                                                torch::kLong, torch::kHalf, torch::kFloat, torch::kDouble};
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {5}, {2, 3}, {0, 4}, {1, 2, 3, 2}};
  int i = 0;
  for (const auto type : types) {
    for (const auto& shape : shapes) {
      std::int64_t n = 1;
      for (const auto d : shape) n *= d;
      const torch::Tensor t = (torch::arange(n) % 7 - 3).to(type).reshape(shape);
      const std::string path = dir.file("t" + std::to_string(i++) + ".npy");
      speculators::save_npy(path, t);
      const torch::Tensor got = speculators::load_npy(path);
      INFO(c10::toString(type) << " " << t.sizes());
      CHECK(got.scalar_type() == type);
      CHECK(got.sizes() == t.sizes());
      CHECK(torch::equal(got, t));
      // numpy aligns the data start to 64 bytes.
      const std::string bytes = read_bytes(path);
      CHECK((bytes.size() - static_cast<std::size_t>(n) * t.element_size()) % 64 == 0);
    }
  }
}

TEST_CASE("npy writer matches numpy's bytes", "[npy]") {
  ScratchDir dir;
  const std::string path = dir.file("x.npy");

  SECTION("np.save(np.arange(3, dtype=np.int64))") {
    speculators::save_npy(path, torch::arange(3, torch::kLong));
    // 10 prefix bytes + 57-character dict + 60 spaces + '\n' = 128; header length 118 = 'v'.
    const std::string expected = kMagic + std::string("\x01\x00", 2) + "v" + std::string(1, '\0') +
                                 "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }" +
                                 std::string(60, ' ') + "\n" + std::string("\0\0\0\0\0\0\0\0", 8) +
                                 std::string("\x01\0\0\0\0\0\0\0", 8) + std::string("\x02\0\0\0\0\0\0\0", 8);
    CHECK(read_bytes(path) == expected);
  }
  SECTION("np.save(np.array([True, False, True]))") {
    speculators::save_npy(path, torch::tensor({true, false, true}));
    const std::string expected = kMagic + std::string("\x01\x00", 2) + "v" + std::string(1, '\0') +
                                 "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }" +
                                 std::string(60, ' ') + "\n" + std::string("\x01\x00\x01", 3);
    CHECK(read_bytes(path) == expected);
  }
  SECTION("np.save(np.int64(7)): a 0-d array has no growth room") {
    speculators::save_npy(path, torch::tensor(7, torch::kLong).reshape({}));
    // 10 + 55 + 62 + 1 = 128; header length 118.
    const std::string expected = kMagic + std::string("\x01\x00", 2) + "v" + std::string(1, '\0') +
                                 "{'descr': '<i8', 'fortran_order': False, 'shape': (), }" +
                                 std::string(62, ' ') + "\n" + std::string("\x07\0\0\0\0\0\0\0", 8);
    CHECK(read_bytes(path) == expected);
  }
  SECTION("np.save(np.ones((1,)*15, np.int64)): growth room pushes the header to 192 bytes") {
    // numpy >= 1.23 leaves 21 - len(repr(shape[0])) = 20 spaces after the dict so the first
    // axis can grow in place; the 98-character dict + 20 + '\n' then needs 63 more spaces to
    // reach 192 (header length 182 = 0xB6).
    speculators::save_npy(path, torch::ones(std::vector<std::int64_t>(15, 1), torch::kLong));
    const std::string dict =
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), }";
    REQUIRE(dict.size() == 98);
    const std::string expected = kMagic + std::string("\x01\x00", 2) + "\xB6" + std::string(1, '\0') + dict +
                                 std::string(83, ' ') + "\n" + std::string("\x01\0\0\0\0\0\0\0", 8);
    CHECK(read_bytes(path) == expected);
  }
  SECTION("float32 2x3 in C order") {
    speculators::save_npy(path, torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}).reshape({3, 2}).t());
    const std::string bytes = read_bytes(path);
    CHECK(bytes.substr(10, 59) == "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    REQUIRE(bytes.size() == 128 + 24);
    // Transposed input: row 0 is 1, 3, 5.
    CHECK(bytes.substr(128, 12) == std::string("\x00\x00\x80\x3F\x00\x00\x40\x40\x00\x00\xA0\x40", 12));
  }
}

TEST_CASE("npy reader accepts hand-built v1, v2 and v3 files", "[npy]") {
  ScratchDir dir;
  const std::string path = dir.file("h.npy");

  SECTION("v1, keys in another order, double quotes, Python 2 long ints, no trailing comma") {
    write_bytes(path, npy_v1(R"({"shape": (3L,), "fortran_order": False, "descr": "<i2"})",
                             std::string("\x01\x00\xFF\xFF\x00\x80", 6)));
    const torch::Tensor t = speculators::load_npy(path);
    CHECK(t.scalar_type() == torch::kShort);
    CHECK(torch::equal(t, torch::tensor({1, -1, -32768}, torch::kShort)));
  }
  SECTION("v2 with a 4-byte header length") {
    const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n";
    write_bytes(path, kMagic + std::string("\x02\x00", 2) + le_bytes(header.size(), 4) + header +
                          std::string("\x00\x00\x80\x3F\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40", 16));
    CHECK(torch::equal(speculators::load_npy(path), torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2})));
  }
  SECTION("v3 (UTF-8 header)") {
    const std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n";
    write_bytes(path, kMagic + std::string("\x03\x00", 2) + le_bytes(header.size(), 4) + header + "\x05\x06\xFF");
    CHECK(torch::equal(speculators::load_npy(path), torch::tensor({5, 6, 255}, torch::kByte)));
  }
  SECTION("'<i1' is read like '|i1'") {
    write_bytes(path, npy_v1("{'descr': '<i1', 'fortran_order': False, 'shape': (2,), }", "\xFF\x01"));
    CHECK(torch::equal(speculators::load_npy(path), torch::tensor({-1, 1}, torch::kChar)));
  }
  SECTION("bool bytes other than 0/1 read as true") {
    write_bytes(path, npy_v1("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", std::string("\x00\x02\x01", 3)));
    const torch::Tensor t = speculators::load_npy(path);
    CHECK(t.scalar_type() == torch::kBool);
    CHECK(torch::equal(t.to(torch::kByte), torch::tensor({0, 1, 1}, torch::kByte)));
  }
}

TEST_CASE("npy reader rejects malformed files naming the file", "[npy]") {
  ScratchDir dir;
  const std::string i8x2 = "'descr': '<i8', 'fortran_order': False";
  const std::string two_i64 = std::string(16, '\x01');
  struct Case {
    const char* what;
    std::string bytes;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "magic"},
      {"bad magic", std::string("\x93NUMPX\x01\x00", 8) + "xxxx", "magic"},
      {"magic only", kMagic, "truncated header"},
      {"unsupported version", kMagic + std::string("\x04\x00\x10\x00", 4) + std::string(16, ' '), "version 4.0"},
      {"truncated header", kMagic + std::string("\x01\x00", 2) + le_bytes(118, 2) + "{'descr': '<i8'", "truncated header"},
      {"not a dict", npy_v1("[1, 2]", ""), "expected '{'"},
      {"missing shape", npy_v1("{" + i8x2 + ", }", two_i64), "'shape'"},
      {"unexpected key", npy_v1("{" + i8x2 + ", 'shape': (2,), 'x': 1}", two_i64), "unexpected key 'x'"},
      {"duplicate key", npy_v1("{" + i8x2 + ", 'shape': (2,), 'shape': (2,)}", two_i64), "twice"},
      {"unterminated string", npy_v1("{'descr: '<i8'", ""), "bad header"},
      {"shape not a tuple", npy_v1("{" + i8x2 + ", 'shape': (2)}", two_i64), "tuple"},
      {"negative shape", npy_v1("{" + i8x2 + ", 'shape': (-2,)}", two_i64), "non-negative"},
      {"shape too large", npy_v1("{" + i8x2 + ", 'shape': (99999999999999999999,)}", two_i64), "too large"},
      {"shape product overflows", npy_v1("{" + i8x2 + ", 'shape': (4294967296, 4294967296, 4)}", ""), "too large"},
      {"text after the dict", npy_v1("{" + i8x2 + ", 'shape': (2,)} x", two_i64), "after the dict"},
      {"fortran order", npy_v1("{'descr': '<i8', 'fortran_order': True, 'shape': (2,)}", two_i64), "fortran_order True"},
      {"fortran_order not a bool", npy_v1("{'descr': '<i8', 'fortran_order': 0, 'shape': (2,)}", two_i64), "True or False"},
      {"big-endian", npy_v1("{'descr': '>i8', 'fortran_order': False, 'shape': (2,)}", two_i64), "big-endian dtype '>i8'"},
      {"unsupported dtype", npy_v1("{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", two_i64), "unsupported dtype '<c8'"},
      {"structured dtype", npy_v1("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,)}", ""), "structured"},
      {"data shorter than shape", npy_v1("{" + i8x2 + ", 'shape': (3,)}", two_i64), "data is 16 bytes"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    INFO(c.what);
    const std::string path = dir.file("bad" + std::to_string(i) + ".npy");
    write_bytes(path, c.bytes);
    const std::string msg = error_message([&] { speculators::load_npy(path); });
    CHECK_THAT(msg, Contains(path) && Contains(c.expected));
  }
  const std::string missing = dir.file("missing.npy");
  CHECK_THAT(error_message([&] { speculators::load_npy(missing); }), Contains(missing));
}

TEST_CASE("npy writer refuses dtypes numpy cannot hold", "[npy]") {
  ScratchDir dir;
  const std::string path = dir.file("w.npy");
  std::string msg = error_message([&] { speculators::save_npy(path, torch::zeros({2}, torch::kBFloat16)); });
  CHECK_THAT(msg, Contains(path) && Contains("bfloat16") && Contains("float32"));
  msg = error_message([&] { speculators::save_npy(path, torch::zeros({2}, torch::kComplexFloat)); });
  CHECK_THAT(msg, Contains(path) && Contains("ComplexFloat"));
  msg = error_message([&] { speculators::save_npy(path, torch::Tensor()); });
  CHECK_THAT(msg, Contains(path) && Contains("undefined"));
}
