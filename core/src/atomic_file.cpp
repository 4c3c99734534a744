// Atomic file replacement (see atomic_file.h): temporary file, fsync, rename, directory fsync.
#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "speculators/error.h"

namespace speculators {
namespace {

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), temp_path_(path_ + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_errno("cannot create temporary file '" + temp_path_ + "'");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux transfers at most ~2 GiB per write(); large tensors take several calls.
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("cannot write '" + temp_path_ + "'");
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail_errno("cannot fsync '" + temp_path_ + "'");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_errno("cannot close '" + temp_path_ + "'");
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    fail_errno("cannot rename '" + temp_path_ + "' to its final name");
  }
  committed_ = true;
  // The rename is only durable once the directory entry is on disk.
  const std::string dir = parent_dir(path_);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail_errno("cannot open directory '" + dir + "' to fsync it");
  const int rc = ::fsync(dir_fd);
  ::close(dir_fd);
  if (rc != 0) fail_errno("cannot fsync directory '" + dir + "'");
}

void AtomicFileWriter::fail_errno(const std::string& what) const {
  const int err = errno;
  fail("writing '" + path_ + "': " + what + ": " + std::strerror(err));
}

}  // namespace speculators
