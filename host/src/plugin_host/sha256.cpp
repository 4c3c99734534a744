// SHA-256 via OpenSSL's EVP interface (libcrypto from Debian's libssl).
#include "plugin_host/sha256.h"

#include <openssl/evp.h>

#include <fstream>
#include <vector>

#include "speculators/log.h"

namespace speculators {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    fail("OpenSSL: cannot initialise a SHA-256 digest");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, std::size_t size) {
  if (size > 0 && EVP_DigestUpdate(ctx_, data, size) != 1) fail("OpenSSL: SHA-256 update failed");
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &length) != 1) fail("OpenSSL: SHA-256 final failed");
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(const std::string& data) {
  Sha256 hash;
  hash.update(data);
  return hash.hex_digest();
}

std::string sha256_file_hex(const std::string& path, ExitCode code) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(cat("cannot read ", path, " to check its sha256"), code);
  Sha256 hash;
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (in.gcount() > 0) hash.update(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) fail(cat("error while reading ", path, " to check its sha256"), code);
  return hash.hex_digest();
}

}  // namespace speculators
