// Helpers for the file-format tests: a scratch directory, raw byte files written and read back
// by hand (so the tests check the format, not the code under test), and the message of the
// speculators::Error an action throws.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "speculators/error.h"

namespace speculators::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/speculators_test_XXXXXX";
    if (!::mkdtemp(templ.data())) FAIL("mkdtemp failed for " << templ);
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `n` as `width` little-endian bytes.
inline std::string le_bytes(unsigned long long n, int width) {
  std::string out;
  for (int i = 0; i < width; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFF);
  return out;
}

// The message of the speculators::Error that `action` throws; fails the test if it throws
// nothing or something else.
template <class F>
std::string error_message(F&& action) {
  try {
    action();
  } catch (const speculators::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected speculators::Error, got: " << e.what());
  }
  FAIL("expected speculators::Error, nothing was thrown");
  return "";
}

}  // namespace speculators::test
