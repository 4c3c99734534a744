// SHA-256 through OpenSSL's libcrypto: the host checks a plugin's .so against the sha256 its
// manifest records before it opens the file (docs/plugins.md), and a resume checks each
// checkpoint file against the sha256 recorded when it was saved.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "speculators/error.h"

struct evp_md_ctx_st;

namespace speculators {

// Incremental SHA-256: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  void update(const std::string& text) { update(text.data(), text.size()); }
  // The 32-byte digest as 64 lowercase hex digits. Finishes the hash: call once.
  std::string hex_digest();

 private:
  evp_md_ctx_st* ctx_;
};

// The sha256 of a string, as hex.
std::string sha256_hex(const std::string& data);
// The sha256 of a file's bytes, as hex. Throws Error(`code`) naming the file if it cannot be read.
std::string sha256_file_hex(const std::string& path, ExitCode code = ExitCode::kPlugin);

}  // namespace speculators
