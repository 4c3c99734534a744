// safetensors reading and writing: round trips for every dtype, files built byte by byte from
// the format description (8-byte little-endian header length, JSON header, data section) and
// read back, the exact bytes of a saved file, and every malformed header the reader refuses.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "speculators/tensor_io.h"

using Catch::Matchers::Contains;
using speculators::Error;
using speculators::Json;
using speculators::SafetensorsFile;
using speculators::TensorInfo;
using speculators::test::error_message;
using speculators::test::le_bytes;
using speculators::test::read_bytes;
using speculators::test::ScratchDir;
using speculators::test::write_bytes;

namespace {

// A safetensors file as the format defines it: u64 LE header length, header, data.
std::string st_bytes(const std::string& header, const std::string& data) {
  return le_bytes(header.size(), 8) + header + data;
}

const std::vector<std::pair<std::string, torch::ScalarType>> kAllDtypes = {
    {"BOOL", torch::kBool}, {"U8", torch::kByte},  {"I8", torch::kChar},      {"I16", torch::kShort},
    {"I32", torch::kInt},   {"I64", torch::kLong}, {"F16", torch::kHalf},     {"BF16", torch::kBFloat16},
    {"F32", torch::kFloat}, {"F64", torch::kDouble},
};

void check_info(const TensorInfo& info, const std::string& dtype, std::vector<std::int64_t> shape,
                std::uint64_t begin, std::uint64_t end) {
  CHECK(info.dtype == dtype);
  CHECK(info.shape == shape);
  CHECK(info.begin == begin);
  CHECK(info.end == end);
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, shape and value", "[safetensors]") {
  ScratchDir dir;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, type] : kAllDtypes) {
    // Small integers are exact in every dtype, including bool (via != 0).
    tensors["m_" + name] = (torch::arange(12).reshape({3, 4}) % 5 - 2).to(type);
    tensors["s_" + name] = torch::tensor(1).to(type).reshape({});
    tensors["z_" + name] = torch::empty({0, 5}, torch::TensorOptions().dtype(type));
  }
  const std::string path = dir.file("all.safetensors");
  speculators::save_safetensors(path, tensors);

  const auto loaded = speculators::load_safetensors(path);
  REQUIRE(loaded.size() == tensors.size());
  for (const auto& [name, expected] : tensors) {
    INFO(name);
    const torch::Tensor& got = loaded.at(name);
    CHECK(got.scalar_type() == expected.scalar_type());
    CHECK(got.sizes() == expected.sizes());
    CHECK(torch::equal(got, expected));
  }

  SafetensorsFile file(path);
  for (const auto& [name, type] : kAllDtypes) {
    CHECK(file.tensors().at("m_" + name).dtype == name);
    const torch::Tensor view = file.get("m_" + name, /*view=*/true);
    CHECK(torch::equal(view, tensors.at("m_" + name)));
  }
}

TEST_CASE("safetensors reads a file built byte by byte", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("hand.safetensors");
  // Header deliberately unpadded and in a different key order than the writer uses.
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("n":{"shape":[],"dtype":"I64","data_offsets":[8,16]},)"
      R"("m":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]},)"
      R"("__metadata__":{"source":"hand"}})";
  const std::string data = std::string("\x00\x00\xC0\x3F", 4) +            // 1.5f
                           std::string("\x00\x00\x00\xC0", 4) +            // -2.0f
                           std::string("\xFD\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8) +  // int64 -3
                           std::string("\x01\x00\x01", 3);
  write_bytes(path, st_bytes(header, data));

  SafetensorsFile file(path);
  CHECK(file.names() == std::vector<std::string>{"m", "n", "x"});
  check_info(file.tensors().at("x"), "F32", {2}, 0, 8);
  check_info(file.tensors().at("n"), "I64", {}, 8, 16);
  check_info(file.tensors().at("m"), "BOOL", {3}, 16, 19);
  CHECK(file.metadata() == Json::object({{"source", "hand"}}));

  const torch::Tensor x = file.get("x");
  CHECK(x.scalar_type() == torch::kFloat);
  CHECK(x[0].item<float>() == 1.5f);
  CHECK(x[1].item<float>() == -2.0f);
  const torch::Tensor n = file.get("n");
  CHECK(n.dim() == 0);
  CHECK(n.item<std::int64_t>() == -3);
  const torch::Tensor m = file.get("m");
  CHECK(m.scalar_type() == torch::kBool);
  CHECK(torch::equal(m, torch::tensor({true, false, true})));

  Json metadata;
  const auto infos = SafetensorsFile::read_header(path, &metadata);
  REQUIRE(infos.size() == 3);
  check_info(infos.at("x"), "F32", {2}, 0, 8);
  CHECK(metadata == Json::object({{"source", "hand"}}));
}

TEST_CASE("safetensors writer produces the reference byte layout", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("out.safetensors");
  speculators::save_safetensors(path, {{"b", torch::tensor({std::int64_t{1}, std::int64_t{-2}})},
                                       {"a", torch::tensor({0.5f, 1.0f, -1.5f})}});
  // Compact JSON, __metadata__ first, names sorted, dtype/shape/data_offsets per tensor,
  // offsets back to back in name order, spaces up to a multiple of 8 bytes.
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"I64","shape":[2],"data_offsets":[12,28]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  REQUIRE(header.size() % 8 == 0);
  const std::string data = std::string("\x00\x00\x00\x3F", 4) + std::string("\x00\x00\x80\x3F", 4) +
                           std::string("\x00\x00\xC0\xBF", 4) + std::string("\x01\0\0\0\0\0\0\0", 8) +
                           std::string("\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8);
  CHECK(read_bytes(path) == st_bytes(header, data));
  // The write went through a temporary file that is gone now.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("safetensors writer handles metadata, layouts and overwrites", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const torch::Tensor base = torch::arange(6, torch::kFloat).reshape({2, 3});

  SECTION("non-contiguous input is stored in logical order") {
    speculators::save_safetensors(path, {{"t", base.t()}});
    const torch::Tensor got = speculators::load_safetensors(path).at("t");
    CHECK(got.sizes() == std::vector<std::int64_t>{3, 2});
    CHECK(torch::equal(got, base.t()));
  }
  SECTION("custom and empty metadata") {
    speculators::save_safetensors(path, {{"t", base}}, {{"k", "v"}, {"format", "pt"}});
    CHECK(SafetensorsFile(path).metadata() == Json::object({{"format", "pt"}, {"k", "v"}}));
    speculators::save_safetensors(path, {{"t", base}}, {});
    CHECK(read_bytes(path).find("__metadata__") == std::string::npos);
    CHECK(SafetensorsFile(path).metadata() == Json::object());
  }
  SECTION("saving again replaces the file") {
    speculators::save_safetensors(path, {{"t", base}});
    speculators::save_safetensors(path, {{"u", torch::ones({1}, torch::kLong)}});
    CHECK(SafetensorsFile(path).names() == std::vector<std::string>{"u"});
  }
  SECTION("an empty map gives a valid file") {
    speculators::save_safetensors(path, {});
    CHECK(SafetensorsFile(path).tensors().empty());
  }
}

TEST_CASE("safetensors writer refuses what it cannot store", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("bad.safetensors");
  std::string msg = error_message([&] { speculators::save_safetensors(path, {{"w", torch::Tensor()}}); });
  CHECK_THAT(msg, Contains(path) && Contains("'w'") && Contains("undefined"));
  msg = error_message([&] { speculators::save_safetensors(path, {{"c", torch::zeros({2}, torch::kComplexFloat)}}); });
  CHECK_THAT(msg, Contains(path) && Contains("'c'") && Contains("ComplexFloat"));
  msg = error_message([&] { speculators::save_safetensors(path, {{"__metadata__", torch::zeros({2})}}); });
  CHECK_THAT(msg, Contains(path) && Contains("__metadata__"));
  const std::string missing_dir = dir.file("no/such/dir/x.safetensors");
  msg = error_message([&] { speculators::save_safetensors(missing_dir, {{"t", torch::zeros({2})}}); });
  CHECK_THAT(msg, Contains(missing_dir));
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("safetensors views share the mapping and outlive the file object", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("v.safetensors");
  const torch::Tensor expected = torch::arange(10, torch::kLong);
  speculators::save_safetensors(path, {{"v", expected}});
  torch::Tensor view, view2, copy;
  {
    SafetensorsFile file(path);
    view = file.get("v", /*view=*/true);
    view2 = file.get("v", /*view=*/true);
    copy = file.get("v");
  }
  CHECK(view.data_ptr() == view2.data_ptr());  // both point into the one mapping
  CHECK(copy.data_ptr() != view.data_ptr());
  CHECK(torch::equal(view, expected));  // still mapped after the SafetensorsFile is gone
  CHECK(torch::equal(copy, expected));
}

TEST_CASE("safetensors view of misaligned data falls back to a copy", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("odd.safetensors");
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 1) header += ' ';  // data starts 1 byte past a 4-byte boundary
  write_bytes(path, st_bytes(header, std::string("\x00\x00\xC0\x3F\x00\x00\x00\xC0", 8)));
  SafetensorsFile file(path);
  const torch::Tensor a = file.get("x", /*view=*/true);
  const torch::Tensor b = file.get("x", /*view=*/true);
  CHECK(a.data_ptr() != b.data_ptr());  // two separate copies, not views
  CHECK(reinterpret_cast<std::uintptr_t>(a.data_ptr()) % 4 == 0);
  CHECK(torch::equal(a, torch::tensor({1.5f, -2.0f})));
}

TEST_CASE("safetensors BOOL copies read any non-zero byte as true", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("b.safetensors");
  write_bytes(path, st_bytes(R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x00\x02\x01", 3)));
  const torch::Tensor b = SafetensorsFile(path).get("b");
  CHECK(torch::equal(b.to(torch::kByte), torch::tensor({0, 1, 1}, torch::kByte)));
}

TEST_CASE("safetensors reader rejects malformed files naming the file", "[safetensors]") {
  ScratchDir dir;
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  struct Case {
    const char* what;
    std::string bytes;
    std::vector<std::string> expected;  // substrings of the message besides the path
  };
  const std::vector<Case> cases = {
      {"shorter than 8 bytes", "\x01\x02\x03", {"shorter than the 8-byte"}},
      {"header length past the end", le_bytes(100, 8) + "{}", {"header length 100", "past the end of the file"}},
      {"absurd header length", le_bytes(1ull << 62, 8) + "{}", {"too large"}},
      {"bad JSON", st_bytes(R"({"x":)", ""), {"not valid JSON"}},
      {"header not an object", st_bytes("[1,2]", ""), {"must be a JSON object"}},
      {"entry not an object", st_bytes(R"({"x":3})", ""), {"'x'", "must be an object"}},
      {"unknown dtype", st_bytes(R"({"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "a"),
       {"'x'", "unknown dtype 'F8_E4M3'"}},
      {"missing dtype", st_bytes(R"({"x":{"shape":[1],"data_offsets":[0,1]}})", "a"), {"'x'", "\"dtype\""}},
      {"shape not a list", st_bytes(R"({"x":{"dtype":"U8","shape":3,"data_offsets":[0,3]}})", "abc"),
       {"'x'", "\"shape\" must be a list"}},
      {"shape a nested object", st_bytes(R"({"x":{"dtype":"U8","shape":{"deep":[[1]]},"data_offsets":[0,1]}})", "a"),
       {"'x'", "got a JSON object"}},
      {"negative shape", st_bytes(R"({"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", ""),
       {"'x'", "non-negative integers"}},
      {"fractional shape", st_bytes(R"({"x":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})", "ab"),
       {"'x'", "non-negative integers"}},
      {"shape product overflows",
       st_bytes(R"({"x":{"dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", ""),
       {"'x'", "too large"}},
      {"data_offsets of one value", st_bytes(R"({"x":{)" + f32x2 + R"(,"data_offsets":[0]}})", "12345678"),
       {"'x'", "[begin, end]"}},
      {"data_offsets of strings", st_bytes(R"({"x":{)" + f32x2 + R"(,"data_offsets":["0","8"]}})", "12345678"),
       {"'x'", "[begin, end]"}},
      {"data_offsets missing", st_bytes(R"({"x":{)" + f32x2 + R"(}})", "12345678"), {"'x'", "[begin, end]"}},
      {"begin after end", st_bytes(R"({"x":{)" + f32x2 + R"(,"data_offsets":[8,0]}})", "12345678"),
       {"'x'", "begin > end"}},
      {"offsets past the data section", st_bytes(R"({"x":{)" + f32x2 + R"(,"data_offsets":[0,8]}})", "1234"),
       {"'x'", "past the end of the data section"}},
      {"overlapping tensors",
       st_bytes(R"({"a":{)" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[4,12]}})",
                "123456789012"),
       {"'a'", "'b'", "overlap"}},
      {"byte length differs from shape", st_bytes(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"),
       {"'x'", "span 8 bytes", "needs 12"}},
      {"metadata value not a string", st_bytes(R"({"__metadata__":{"k":1}})", ""), {"__metadata__", "'k'"}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    INFO(c.what);
    const std::string path = dir.file("bad" + std::to_string(i) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string msg = error_message([&] { SafetensorsFile file(path); });
    CHECK_THAT(msg, Contains(path));
    for (const auto& e : c.expected) CHECK_THAT(msg, Contains(e));
    CHECK_THAT(error_message([&] { speculators::load_safetensors(path); }), Contains(path));
  }
}

TEST_CASE("safetensors read_header never needs the data section", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("trunc.safetensors");
  // Declares 16 data bytes, carries 4: the header is fine, the file is not.
  write_bytes(path, st_bytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "1234"));
  const auto infos = SafetensorsFile::read_header(path);
  REQUIRE(infos.size() == 1);
  check_info(infos.at("x"), "F32", {4}, 0, 16);
  const std::string msg = error_message([&] { SafetensorsFile file(path); });
  CHECK_THAT(msg, Contains(path) && Contains("'x'") && Contains("past the end of the data section"));

  // Header problems are still caught.
  write_bytes(path, st_bytes(R"({"x":)", ""));
  CHECK_THAT(error_message([&] { SafetensorsFile::read_header(path); }), Contains(path) && Contains("JSON"));
  write_bytes(path, "abc");
  CHECK_THAT(error_message([&] { SafetensorsFile::read_header(path); }), Contains(path) && Contains("8-byte"));
  const std::string missing = dir.file("missing.safetensors");
  CHECK_THAT(error_message([&] { SafetensorsFile::read_header(missing); }), Contains(missing));
}

TEST_CASE("safetensors get names the file and the missing tensor", "[safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("g.safetensors");
  speculators::save_safetensors(path, {{"present", torch::zeros({1})}});
  SafetensorsFile file(path);
  CHECK(file.contains("present"));
  CHECK_FALSE(file.contains("absent"));
  const std::string msg = error_message([&] { file.get("absent"); });
  CHECK_THAT(msg, Contains(path) && Contains("'absent'") && Contains("present"));
}

TEST_CASE("safetensors dtype names map to torch dtypes both ways", "[safetensors]") {
  for (const auto& [name, type] : kAllDtypes) {
    CHECK(speculators::dtype_from_safetensors(name) == type);
    CHECK(speculators::dtype_to_safetensors(type) == name);
  }
  CHECK_THAT(error_message([] { speculators::dtype_from_safetensors("F8_E5M2"); }), Contains("'F8_E5M2'"));
  CHECK_THAT(error_message([] { speculators::dtype_to_safetensors(torch::kComplexDouble); }),
             Contains("ComplexDouble"));
}
