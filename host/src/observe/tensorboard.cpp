// TFRecord framing and hand-encoded Event protobufs (see tensorboard.h).
#include "observe/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace {

const std::array<std::uint32_t, 256>& crc_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void put_le(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // x86-64 and aarch64 are little-endian, as the format is
  out.append(bytes, sizeof(T));
}

void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_varint(out, static_cast<std::uint64_t>(field) << 3 | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  const auto& table = crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::uint32_t masked_crc32c(const void* data, std::size_t size) {
  const std::uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(const std::string& payload) {
  std::string out;
  std::string len;
  put_le<std::uint64_t>(len, payload.size());
  out += len;
  put_le<std::uint32_t>(out, masked_crc32c(len.data(), len.size()));
  out += payload;
  put_le<std::uint32_t>(out, masked_crc32c(payload.data(), payload.size()));
  return out;
}

std::string encode_file_version_event(double wall_time) {
  std::string ev;
  ev.push_back(0x09);  // field 1, fixed64
  put_le<double>(ev, wall_time);
  put_bytes_field(ev, 3, "brain.Event:2");
  return ev;
}

std::string encode_scalars_event(double wall_time, std::int64_t step,
                                 const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes_field(v, 1, tag);
    v.push_back(0x15);  // field 2, fixed32
    put_le<float>(v, value);
    put_bytes_field(summary, 1, v);
  }
  std::string ev;
  ev.push_back(0x09);
  put_le<double>(ev, wall_time);
  ev.push_back(0x10);  // field 2, varint
  put_varint(ev, static_cast<std::uint64_t>(step));
  put_bytes_field(ev, 5, summary);
  return ev;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail_usage(cat(dir, ": cannot create the TensorBoard directory: ", ec.message()));
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const auto seconds = static_cast<long long>(now_seconds());
  path_ = (std::filesystem::path(dir) / cat("events.out.tfevents.", seconds, ".", host, ".", ::getpid())).string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail(cat(path_, ": cannot open the TensorBoard event file for writing"));
  write_record(encode_file_version_event(now_seconds()));
  flush();
}

void EventFileWriter::add_scalars(std::int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  if (!scalars.empty()) write_record(encode_scalars_event(now_seconds(), step, scalars));
}

void EventFileWriter::flush() {
  out_.flush();
  if (!out_) fail(cat(path_, ": cannot write the TensorBoard event file"));
}

void EventFileWriter::write_record(const std::string& payload) { out_ << tfrecord_frame(payload); }

}  // namespace speculators
