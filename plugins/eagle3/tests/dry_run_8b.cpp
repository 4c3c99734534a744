// A real `speculators-train --dry-run` for a Llama-3.1-8B-shaped verifier, checked against the
// tensor table of llama31.h by reading nothing but the safetensors header of what it wrote.
//
// The verifier directory holds the real config.json and the three tensors a draft copies from the
// verifier (embed_tokens, lm_head, norm) at full size; their bytes are a sparse, all-zero region,
// so the file costs no disk. The header is parsed here with nlohmann-json, independently of the
// project's own safetensors reader.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "llama31.h"

namespace fs = std::filesystem;
using speculators::eagle3::testing::kLlama31Config;
using speculators::eagle3::testing::kLlama31Tensors;

namespace {

// Writes a safetensors file whose tensors are all zero: header, then a hole of the data size.
void write_zero_safetensors(const fs::path& path,
                            const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& bf16_tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, shape] : bf16_tensors) {
    std::uint64_t bytes = 2;
    for (auto d : shape) bytes *= static_cast<std::uint64_t>(d);
    header[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  const std::uint64_t n = text.size();
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << text;
  }
  fs::resize_file(path, 8 + n + offset);
}

nlohmann::json read_header_only(const fs::path& path, std::uint64_t& header_len) {
  std::ifstream in(path, std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  REQUIRE(in.gcount() == 8);
  header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len[i];
  REQUIRE(header_len < (1u << 24));
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  REQUIRE(static_cast<std::uint64_t>(in.gcount()) == header_len);
  return nlohmann::json::parse(text);
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16: return "BF16";
    case torch::kLong: return "I64";
    case torch::kBool: return "BOOL";
    default: return "?";
  }
}

std::uint64_t dtype_bytes(const std::string& name) { return name == "BF16" ? 2 : name == "I64" ? 8 : 1; }

}  // namespace

TEST_CASE("an 8B-shaped dry run writes exactly the tensor table of llama31.h", "[eagle3][8b]") {
  const fs::path work = fs::temp_directory_path() / ("speculators_8b_" + std::to_string(::getpid()));
  fs::remove_all(work);
  fs::create_directories(work / "verifier");
  fs::create_directories(work / "data");
  std::ofstream(work / "verifier" / "config.json") << kLlama31Config;
  write_zero_safetensors(work / "verifier" / "model.safetensors", {{"lm_head.weight", {128256, 4096}},
                                                                   {"model.embed_tokens.weight", {128256, 4096}},
                                                                   {"model.norm.weight", {4096}}});
  std::ofstream(work / "data" / "data.jsonl") << R"({"input_ids": [128000, 9906, 1917, 128009], "loss_mask": [0, 1, 1, 1]})"
                                              << "\n";
  // Token counts for the draft vocabulary (a JSON object of id -> count, one of the formats
  // --token-freq-path reads).
  std::ofstream(work / "data" / "freq.json") << R"({"9906": 1, "1917": 1, "128009": 1})";

  const std::string command = std::string("\"") + SPECULATORS_TRAIN_EXE + "\" --speculator-type eagle3" +
                              " --verifier-name-or-path " + (work / "verifier").string() +
                              " --data-path " + (work / "data").string() + " --save-path " +
                              (work / "out").string() + " --draft-vocab-size 32000 --token-freq-path " + (work / "data" / "freq.json").string() + " --dry-run";
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);

  const fs::path file = work / "out" / "model.safetensors";
  std::uint64_t header_len = 0;
  const auto header = read_header_only(file, header_len);
  REQUIRE(header.at("__metadata__") == nlohmann::json({{"format", "pt"}}));

  std::map<std::string, nlohmann::json> got;
  for (const auto& [name, entry] : header.items()) {
    if (name != "__metadata__") got[name] = entry;
  }
  std::map<std::string, std::pair<std::vector<std::int64_t>, std::string>> expected;
  for (const auto& [name, shape, dtype] : kLlama31Tensors) expected[name] = {shape, dtype_name(dtype)};

  std::vector<std::string> got_names, expected_names;
  for (const auto& kv : got) got_names.push_back(kv.first);
  for (const auto& kv : expected) expected_names.push_back(kv.first);
  REQUIRE(got_names == expected_names);

  std::uint64_t data_bytes = 0;
  for (const auto& [name, entry] : got) {
    INFO(name);
    CHECK(entry.at("shape").get<std::vector<std::int64_t>>() == expected.at(name).first);
    CHECK(entry.at("dtype").get<std::string>() == expected.at(name).second);
    std::uint64_t bytes = dtype_bytes(entry.at("dtype").get<std::string>());
    for (auto d : entry.at("shape").get<std::vector<std::int64_t>>()) bytes *= static_cast<std::uint64_t>(d);
    const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
    CHECK(offsets.at(1) - offsets.at(0) == bytes);
    data_bytes += bytes;
  }
  // The data region is exactly the tensors (about 1.9 GB).
  CHECK(fs::file_size(file) == 8 + header_len + data_bytes);
  CHECK(data_bytes > 1800000000ULL);
  CHECK(data_bytes < 2000000000ULL);
  fs::remove_all(work);
}
