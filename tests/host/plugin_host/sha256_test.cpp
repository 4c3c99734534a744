// SHA-256 (host/src/sha256.h) against the published test vectors: FIPS 180-2 Appendix B
// ("abc", the 448-bit message, one million 'a') and the well-known digest of the empty string,
// fed in one piece and in pieces that straddle the 64-byte block boundary.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "plugin_host/sha256.h"
#include "plugin_test_util.h"
#include "speculators/error.h"

using namespace speculators;

namespace {

const std::string kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kTwoBlock = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
const std::string kMillionA = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
const std::string kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kTwoBlockText = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

}  // namespace

TEST_CASE("sha256: FIPS 180-2 vectors and the empty string", "[sha256]") {
  CHECK(sha256_hex("abc") == kAbc);
  CHECK(sha256_hex(kTwoBlockText) == kTwoBlock);
  CHECK(sha256_hex(std::string(1000000, 'a')) == kMillionA);
  CHECK(sha256_hex("") == kEmpty);
}

TEST_CASE("sha256: the same digest whatever the pieces the input comes in", "[sha256]") {
  // 56 bytes is exactly where padding spills into a second block; pieces of 1, 7 and 63 bytes
  // cross every block boundary at a different offset.
  for (std::size_t piece : {1u, 7u, 63u, 64u, 65u, 4096u}) {
    Sha256 hash;
    const std::string text(1000000, 'a');
    for (std::size_t at = 0; at < text.size(); at += piece) hash.update(text.substr(at, piece));
    CHECK(hash.hex_digest() == kMillionA);
  }
  Sha256 two;
  two.update(kTwoBlockText.substr(0, 30));
  two.update(kTwoBlockText.substr(30));
  CHECK(two.hex_digest() == kTwoBlock);
}

TEST_CASE("sha256: a file's digest, and a clear error for a missing file", "[sha256]") {
  test::TempDir temp("sha256");
  const auto path = temp.path() / "abc.bin";
  std::ofstream(path, std::ios::binary) << "abc";
  CHECK(sha256_file_hex(path.string()) == kAbc);
  const std::string missing = (temp.path() / "missing.so").string();
  try {
    sha256_file_hex(missing);
    FAIL("a missing file was hashed");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()) == "cannot read " + missing + " to check its sha256");
  }
}
