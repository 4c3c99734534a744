// TensorBoard event files written natively, with no protobuf or TensorFlow dependency: each record
// is TFRecord-framed (uint64 length, masked CRC32C of the length, the bytes, masked CRC32C of the
// bytes) and holds an `Event` protobuf encoded by hand: wall_time (field 1, double), step (2,
// int64), file_version (3, the first record's "brain.Event:2") or summary (5) whose values carry
// a tag (1, string) and a simple_value (2, float). That is the subset TensorBoard's scalar
// dashboard reads.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace speculators {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses it.
std::uint32_t crc32c(const void* data, std::size_t size);
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t masked_crc32c(const void* data, std::size_t size);

// One TFRecord frame around `payload`.
std::string tfrecord_frame(const std::string& payload);

// Event protobufs.
std::string encode_file_version_event(double wall_time);
std::string encode_scalars_event(double wall_time, std::int64_t step,
                                 const std::vector<std::pair<std::string, float>>& scalars);

// Appends events to <dir>/events.out.tfevents.<seconds>.<host>.<pid> (one new file per process,
// as TensorBoard's own writers do; it reads every file of the directory).
class EventFileWriter {
 public:
  explicit EventFileWriter(const std::string& dir);
  void add_scalars(std::int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);
  std::string path_;
  std::ofstream out_;
};

}  // namespace speculators
