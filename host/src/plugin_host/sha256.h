// SHA-256 (FIPS 180-4), small and dependency-free: the host checks a plugin's .so against the
// sha256 its manifest records before it opens the file (docs/plugins.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace speculators {

// Incremental SHA-256: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  void update(const std::string& text) { update(text.data(), text.size()); }
  // The 32-byte digest as 64 lowercase hex digits. Finishes the hash: call once.
  std::string hex_digest();

 private:
  void compress(const std::uint8_t* block);

  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> buffer_;
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

// The sha256 of a string, as hex.
std::string sha256_hex(const std::string& data);
// The sha256 of a file's bytes, as hex. Throws Error(kPlugin) naming the file if it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace speculators
