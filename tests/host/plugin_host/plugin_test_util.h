// Helpers shared by the plugin-host tests: a temporary directory that cleans up after itself,
// and the fingerprint the CPU fixtures are checked against.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "plugin_host/plugin_loader.h"

namespace speculators {
namespace test {

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("speculators_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(stamp));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Creates directory `relative` (and its parents) and returns its canonical path.
  std::string dir(const std::string& relative) const {
    std::filesystem::create_directories(path_ / relative);
    return std::filesystem::canonical(path_ / relative).string();
  }
  // Creates an empty file (and its directory) and returns its canonical path.
  std::string file(const std::string& relative) const {
    std::filesystem::create_directories((path_ / relative).parent_path());
    std::ofstream(path_ / relative).put('\n');
    return std::filesystem::canonical(path_ / relative).string();
  }

 private:
  std::filesystem::path path_;
};

// This build's fingerprint: the one the fixtures, the macro plugins and the packages are built
// with (the CUDA flag is on in a build against a CUDA LibTorch).
inline HostFingerprint this_host() { return HostFingerprint::current(); }

// This build's fingerprint with the CUDA flag off: a CPU-only host.
inline HostFingerprint cpu_host() {
  HostFingerprint host = HostFingerprint::current();
  host.cuda = 0;
  return host;
}

}  // namespace test
}  // namespace speculators
