// Atomic file replacement for core's writers (safetensors, npy). Bytes go to `<path>.tmp.<pid>`
// in the same directory; commit() fsyncs it, renames it over `path` and fsyncs the directory so
// that the rename itself survives a crash. A reader sees the old file or the new one, never a
// half-written one. Private to core: not part of the SDK surface.
#pragma once

#include <cstddef>
#include <string>

namespace speculators {

class AtomicFileWriter {
 public:
  // Creates the temporary file; throws Error naming `path` when that is not possible.
  explicit AtomicFileWriter(std::string path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, std::size_t size);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
  // fsync, close, rename over the final path, fsync the directory.
  void commit();

  const std::string& temp_path() const { return temp_path_; }

 private:
  [[noreturn]] void fail_errno(const std::string& what) const;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace speculators
