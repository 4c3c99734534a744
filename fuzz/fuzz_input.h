// Shared by the fuzz drivers. The readers take a path, so each input is written to one scratch
// file per process: in $FUZZ_TMPDIR, else /dev/shm (no disk traffic for the writers' fsyncs),
// else /tmp. The files are removed when the process exits normally.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace speculators::fuzz {

inline std::vector<std::string>& scratch_files() {
  static std::vector<std::string> files;
  return files;
}

// A per-process scratch path ending in `suffix`.
inline std::string scratch_path(const std::string& suffix) {
  const char* dir = std::getenv("FUZZ_TMPDIR");
  std::string base = dir && *dir ? dir : (::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  std::string path = base + "/speculators_fuzz_" + std::to_string(::getpid()) + "_" + suffix;
  if (scratch_files().empty()) {
    std::atexit([] {
      for (const auto& f : scratch_files()) ::unlink(f.c_str());
    });
  }
  scratch_files().push_back(path);
  return path;
}

// Replaces the file's contents with the input. A failure here is the machine's, not a finding.
inline void write_input(const std::string& path, const std::uint8_t* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n <= 0) std::abort();
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// A property of the readers; when it fails, trap so that libFuzzer reports the input.
inline void require(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace speculators::fuzz
