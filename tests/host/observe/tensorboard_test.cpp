// TensorBoard event files: records are read back byte by byte, their masked CRC32Cs checked with
// a bitwise CRC-32C written here (independent of the table-driven one under test), and the Event
// protobufs decoded with a minimal wire-format reader.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "../../core/io_test_util.h"
#include "observe/tensorboard.h"

using namespace speculators;

namespace {

std::uint32_t bitwise_crc32c(const std::string& s) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::uint32_t mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

template <typename T>
T read_le(const std::string& s, std::size_t at) {
  T v;
  REQUIRE(at + sizeof(T) <= s.size());
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}

std::uint64_t varint(const std::string& s, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(at < s.size());
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

struct Field {
  int number;
  int wire;
  std::uint64_t integer = 0;
  std::string bytes;
};

std::vector<Field> fields(const std::string& msg) {
  std::vector<Field> out;
  std::size_t at = 0;
  while (at < msg.size()) {
    const auto key = varint(msg, at);
    Field f{static_cast<int>(key >> 3), static_cast<int>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.integer = varint(msg, at);
    } else if (f.wire == 1) {
      f.bytes = msg.substr(at, 8);
      at += 8;
    } else if (f.wire == 2) {
      const auto len = varint(msg, at);
      f.bytes = msg.substr(at, len);
      at += len;
    } else if (f.wire == 5) {
      f.bytes = msg.substr(at, 4);
      at += 4;
    } else {
      FAIL("unexpected wire type " << f.wire);
    }
    out.push_back(f);
  }
  REQUIRE(at == msg.size());
  return out;
}

// Splits a file into record payloads, checking both CRCs of every record.
std::vector<std::string> records(const std::string& data) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < data.size()) {
    const auto len = read_le<std::uint64_t>(data, at);
    CHECK(read_le<std::uint32_t>(data, at + 8) == mask(bitwise_crc32c(data.substr(at, 8))));
    const std::string payload = data.substr(at + 12, len);
    CHECK(read_le<std::uint32_t>(data, at + 12 + len) == mask(bitwise_crc32c(payload)));
    out.push_back(payload);
    at += 12 + len + 4;
  }
  REQUIRE(at == data.size());
  return out;
}

}  // namespace

TEST_CASE("crc32c matches the standard check value and a bitwise implementation", "[tensorboard]") {
  const std::string check = "123456789";
  CHECK(crc32c(check.data(), check.size()) == 0xE3069283u);
  CHECK(bitwise_crc32c(check) == 0xE3069283u);
  const std::string other = "brain.Event:2 and some longer text \x01\x02\xff";
  CHECK(crc32c(other.data(), other.size()) == bitwise_crc32c(other));
}

TEST_CASE("event files hold a version record and scalar summaries TensorBoard can read", "[tensorboard]") {
  test::ScratchDir dir;
  std::string path;
  {
    EventFileWriter writer(dir.path() + "/tb");
    writer.add_scalars(0, {{"train/loss", 2.5f}, {"lr", 1e-4f}});
    writer.add_scalars(7, {{"val/loss_epoch", 1.25f}});
    writer.flush();
    path = writer.path();
  }
  CHECK(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto recs = records(data);
  REQUIRE(recs.size() == 3);

  auto first = fields(recs[0]);
  REQUIRE(first.size() == 2);
  CHECK(first[0].number == 1);
  CHECK(first[0].wire == 1);
  CHECK(read_le<double>(first[0].bytes, 0) > 1.6e9);  // wall time in seconds
  CHECK(first[1].number == 3);
  CHECK(first[1].bytes == "brain.Event:2");

  std::vector<std::pair<std::int64_t, std::map<std::string, float>>> seen;
  for (std::size_t r = 1; r < recs.size(); ++r) {
    std::int64_t step = -1;
    std::map<std::string, float> values;
    for (const auto& f : fields(recs[r])) {
      if (f.number == 2) step = static_cast<std::int64_t>(f.integer);
      if (f.number != 5) continue;
      for (const auto& value : fields(f.bytes)) {
        REQUIRE(value.number == 1);
        std::string tag;
        float v = 0;
        for (const auto& vf : fields(value.bytes)) {
          if (vf.number == 1) tag = vf.bytes;
          if (vf.number == 2 && vf.wire == 5) v = read_le<float>(vf.bytes, 0);
        }
        values[tag] = v;
      }
    }
    seen.emplace_back(step, values);
  }
  CHECK(seen[0].first == 0);
  CHECK(seen[0].second == std::map<std::string, float>{{"train/loss", 2.5f}, {"lr", 1e-4f}});
  CHECK(seen[1].first == 7);
  CHECK(seen[1].second == std::map<std::string, float>{{"val/loss_epoch", 1.25f}});
}

TEST_CASE("a step above 2^31 and long tags encode as varints", "[tensorboard]") {
  const std::string tag(300, 'x');  // a length that needs two varint bytes
  const auto ev = encode_scalars_event(1.0, 5000000000LL, {{tag, 3.0f}});
  auto f = fields(ev);
  REQUIRE(f.size() == 3);
  CHECK(f[1].integer == 5000000000ULL);
  auto value = fields(fields(f[2].bytes)[0].bytes);
  CHECK(value[0].bytes == tag);
  CHECK(read_le<float>(value[1].bytes, 0) == 3.0f);
}
