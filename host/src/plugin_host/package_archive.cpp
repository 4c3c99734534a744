// See package_archive.h. The tar layout follows POSIX.1-2001 (ustar header fields, pax extended
// headers 'x'/'g') and GNU tar's long-name entries ('L') and base-256 sizes, which is what GNU tar,
// libarchive (cmake -E tar), Python's tarfile and dpkg-deb write.
#include "plugin_host/package_archive.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

extern char** environ;

namespace speculators {

namespace {

constexpr std::size_t kBlock = 512;
constexpr std::size_t kMaxPaxBytes = 64 * 1024;

[[noreturn]] void refuse(const std::string& package, const std::string& why) {
  fail(cat("plugin package ", package, ": ", why), ExitCode::kPlugin);
}

// Reads exactly n bytes unless the stream ends first; returns how many were read.
std::size_t read_full(const ByteSource& source, char* out, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const std::size_t k = source(out + got, n - got);
    if (k == 0) break;
    got += k;
  }
  return got;
}

void skip_bytes(const ByteSource& source, std::uint64_t n, const std::string& package, const std::string& entry) {
  std::array<char, 64 * 1024> scratch{};
  while (n > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch.size()));
    const std::size_t got = read_full(source, scratch.data(), want);
    if (got != want) refuse(package, cat("truncated archive (in the content of '", entry, "')"));
    n -= got;
  }
}

// A NUL-terminated (or full-width) header field.
std::string field(const char* header, std::size_t offset, std::size_t width) {
  const char* begin = header + offset;
  return std::string(begin, strnlen(begin, width));
}

// An octal number field (spaces and NULs around it), or GNU's base-256 form (high bit set).
std::uint64_t number_field(const char* header, std::size_t offset, std::size_t width, const std::string& package,
                           const char* what) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(header + offset);
  std::uint64_t value = 0;
  if (bytes[0] & 0x80) {
    if (bytes[0] != 0x80) refuse(package, cat("a negative or oversized ", what, " in a tar header"));
    for (std::size_t i = 1; i < width; ++i) {
      if (value >> 56) refuse(package, cat("a ", what, " beyond 2^64 in a tar header"));
      value = (value << 8) | bytes[i];
    }
    return value;
  }
  std::size_t i = 0;
  while (i < width && (bytes[i] == ' ' || bytes[i] == 0)) ++i;
  for (; i < width && bytes[i] >= '0' && bytes[i] <= '7'; ++i) {
    if (value >> 60) refuse(package, cat("a ", what, " beyond 2^64 in a tar header"));
    value = value * 8 + (bytes[i] - '0');
  }
  for (; i < width; ++i) {
    if (bytes[i] != ' ' && bytes[i] != 0) refuse(package, cat("not a tar archive (bad ", what, " field)"));
  }
  return value;
}

bool all_zero(const char* block) {
  return std::all_of(block, block + kBlock, [](char c) { return c == 0; });
}

void check_header_checksum(const char* header, const std::string& package) {
  const std::uint64_t stored = number_field(header, 148, 8, package, "checksum");
  std::uint64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= 148 && i < 156;
    unsigned_sum += in_field ? ' ' : static_cast<unsigned char>(header[i]);
    signed_sum += in_field ? ' ' : static_cast<signed char>(header[i]);
  }
  if (stored != unsigned_sum && static_cast<std::int64_t>(stored) != signed_sum) {
    refuse(package, "not a tar archive (header checksum mismatch)");
  }
}

// "./a//b/" -> "a/b"; refuses absolute paths, "..", control characters and over-long names.
// Returns "" for the archive's root directory itself.
std::string normalize_path(const std::string& raw, const std::string& package) {
  const std::string shown = raw.size() > 200 ? raw.substr(0, 200) + "..." : raw;
  if (raw.size() > kMaxPackageNameBytes) refuse(package, cat("an entry name longer than ", kMaxPackageNameBytes, " bytes"));
  for (const char c : raw) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      refuse(package, "an entry name with a control character (only plain relative paths are allowed)");
    }
  }
  if (!raw.empty() && raw.front() == '/') refuse(package, cat("entry '", shown, "' is an absolute path"));
  std::string out;
  std::size_t start = 0;
  while (start <= raw.size()) {
    std::size_t end = raw.find('/', start);
    if (end == std::string::npos) end = raw.size();
    const std::string part = raw.substr(start, end - start);
    if (part == "..") refuse(package, cat("entry '", shown, "' leaves the package (\"..\")"));
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    start = end + 1;
  }
  return out;
}

// The "path" and "size" records of a pax extended header ("<len> <key>=<value>\n"...).
void parse_pax(const std::string& text, std::string& path, std::uint64_t& size, bool& has_size,
               const std::string& package) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t space = text.find(' ', at);
    if (space == std::string::npos) refuse(package, "a malformed pax header");
    std::uint64_t length = 0;
    for (std::size_t i = at; i < space; ++i) {
      if (text[i] < '0' || text[i] > '9' || length > kMaxPaxBytes) refuse(package, "a malformed pax header");
      length = length * 10 + static_cast<std::uint64_t>(text[i] - '0');
    }
    if (length <= space - at + 1 || at + length > text.size() || text[at + length - 1] != '\n') {
      refuse(package, "a malformed pax header");
    }
    const std::string record = text.substr(space + 1, at + length - 1 - (space + 1));
    const std::size_t eq = record.find('=');
    if (eq == std::string::npos) refuse(package, "a malformed pax header");
    const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") path = value;
    if (key == "size") {
      if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos) {
        refuse(package, "a malformed pax size record");
      }
      size = std::stoull(value);
      has_size = true;
    }
    if (key == "linkpath") refuse(package, "a link entry (only regular files and directories are allowed)");
    at += length;
  }
}

std::string read_meta_content(const ByteSource& source, std::uint64_t size, const std::string& package,
                              const char* what) {
  if (size > kMaxPaxBytes) refuse(package, cat("a ", what, " of ", size, " bytes (limit ", kMaxPaxBytes, ")"));
  std::string text(static_cast<std::size_t>(size), '\0');
  if (read_full(source, text.data(), text.size()) != text.size()) refuse(package, "truncated archive");
  const std::uint64_t padding = (kBlock - size % kBlock) % kBlock;
  skip_bytes(source, padding, package, what);
  return text;
}

}  // namespace

std::vector<PackageEntry> read_package_archive(const ByteSource& source, const std::string& package,
                                               const EntryVisitor& visit) {
  std::vector<PackageEntry> entries;
  std::uint64_t total = 0;
  std::string long_name, pax_path;
  std::uint64_t pax_size = 0;
  bool has_pax_size = false;
  std::array<char, kBlock> header{};
  for (std::size_t headers = 0;; ++headers) {
    if (headers > 4 * kMaxPackageEntries) refuse(package, cat("more than ", kMaxPackageEntries, " entries"));
    const std::size_t got = read_full(source, header.data(), kBlock);
    if (got == 0 && headers == 0) refuse(package, "empty archive");
    if (got != kBlock) refuse(package, "truncated archive (no end-of-archive block)");
    if (all_zero(header.data())) break;
    check_header_checksum(header.data(), package);
    const char type = header[156];
    std::uint64_t size = number_field(header.data(), 124, 12, package, "size");
    if (type == 'L') { long_name = read_meta_content(source, size, package, "long name"); continue; }
    if (type == 'x') {
      parse_pax(read_meta_content(source, size, package, "pax header"), pax_path, pax_size, has_pax_size, package);
      continue;
    }
    if (type == 'g') { read_meta_content(source, size, package, "pax header"); continue; }

    std::string raw = field(header.data(), 0, 100);
    if (std::memcmp(header.data() + 257, "ustar", 5) == 0 && header[345] != 0) {
      raw = field(header.data(), 345, 155) + "/" + raw;
    }
    if (!long_name.empty()) raw = long_name.c_str();  // GNU long names end in a NUL
    if (!pax_path.empty()) raw = pax_path;
    if (has_pax_size) size = pax_size;
    long_name.clear(), pax_path.clear(), has_pax_size = false;

    PackageEntry entry;
    entry.path = normalize_path(raw, package);
    const std::string shown = entry.path.size() > 200 ? entry.path.substr(0, 200) + "..." : entry.path;
    if (type == '5') {
      entry.directory = true;
      skip_bytes(source, (size + kBlock - 1) / kBlock * kBlock, package, shown);
    } else if (type == '0' || type == '\0' || type == '7') {
      if (size > kMaxPackageBytes - total) {
        refuse(package, cat("entry '", shown, "' would bring the content past ", kMaxPackageBytes >> 20,
                            " MiB (", size, " bytes); refusing to unpack it"));
      }
      total += size;
      entry.size = size;
    } else {
      refuse(package, cat("entry '", shown, "' is a ",
                          type == '1' || type == '2' ? "link" : type == '3' || type == '4' ? "device" : type == '6' ? "FIFO" : "special entry",
                          " (type '", std::string(1, type), "'); only regular files and directories are allowed"));
    }
    if (entry.path.empty()) {
      if (!entry.directory) refuse(package, "an entry with an empty name");
      continue;  // the archive's "./"
    }
    if (entries.size() >= kMaxPackageEntries) refuse(package, cat("more than ", kMaxPackageEntries, " entries"));
    for (const auto& seen : entries) {
      if (seen.path == entry.path) refuse(package, cat("entry '", shown, "' appears twice"));
    }
    if (!entry.directory) {
      std::uint64_t left = size;
      const ByteSource content = [&](char* out, std::size_t n) -> std::size_t {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, left));
        const std::size_t k = want == 0 ? 0 : source(out, want);
        left -= k;
        return k;
      };
      if (visit) visit(entry, content);
      skip_bytes(source, left + (kBlock - size % kBlock) % kBlock, package, shown);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

namespace {

// A decompressor child writing the uncompressed tar into a pipe; stderr goes to a temporary file.
class Decompressor {
 public:
  Decompressor(const std::vector<std::string>& argv, const std::string& package) : package_(package) {
    std::string log_pattern = (std::filesystem::temp_directory_path() / ".speculators-package-log.XXXXXX").string();
    const int log_fd = ::mkstemp(log_pattern.data());
    if (log_fd < 0) fail(cat("cannot create a temporary file for ", argv[0], ": ", std::strerror(errno)), ExitCode::kPlugin);
    log_path_ = log_pattern;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail(cat("cannot create a pipe: ", std::strerror(errno)), ExitCode::kPlugin);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // SIGPIPE at its default in the child: closing the pipe early (the archive ended, or was
    // refused) stops it even when this process ignores SIGPIPE.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    const int rc = posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    ::close(log_fd);
    read_fd_ = fds[0];
    if (rc != 0) {
      pid_ = -1;
      fail(cat("plugin package ", package, ": could not run ", argv[0], ": ", std::strerror(rc)), ExitCode::kPlugin);
    }
    program_ = argv[0];
  }
  ~Decompressor() { finish(true); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  std::size_t read(char* out, std::size_t n) {
    for (;;) {
      const ssize_t k = ::read(read_fd_, out, n);
      if (k >= 0) return static_cast<std::size_t>(k);
      if (errno != EINTR) return 0;
    }
  }

  // Stops the child (it may still be writing padding after the end-of-archive block) and reports
  // a decompression failure with its message. `quiet` (from the destructor) never throws.
  void finish(bool quiet) {
    if (read_fd_ >= 0) ::close(read_fd_), read_fd_ = -1;
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
      const bool ok = (WIFEXITED(status) && WEXITSTATUS(status) == 0) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE);
      if (!ok && !quiet) {
        std::ifstream in(log_path_);
        std::string why((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::replace(why.begin(), why.end(), '\n', ' ');
        if (why.size() > 300) why.resize(300);
        ::unlink(log_path_.c_str());
        fail(cat("plugin package ", package_, ": cannot unpack (", program_, "): ", why), ExitCode::kPlugin);
      }
    }
    if (!log_path_.empty()) ::unlink(log_path_.c_str()), log_path_.clear();
  }

 private:
  std::string package_, program_, log_path_;
  pid_t pid_ = -1;
  int read_fd_ = -1;
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<PackageEntry> read_package(const std::string& package, const EntryVisitor& visit) {
  std::vector<std::string> argv;
  if (ends_with(package, ".deb")) {
    argv = {"dpkg-deb", "--fsys-tarfile", package};
  } else if (ends_with(package, ".tar.gz") || ends_with(package, ".tgz")) {
    argv = {"gzip", "-dc", "--", package};
  } else {
    fail_usage(cat("plugin package ", package, ": expected a .tar.gz, .tgz or .deb file"));
  }
  Decompressor child(argv, package);
  std::vector<PackageEntry> entries;
  try {
    entries = read_package_archive([&](char* out, std::size_t n) { return child.read(out, n); }, package, visit);
  } catch (const Error&) {
    // A decompressor's own failure (not gzip format, corrupt data) explains a truncated archive
    // better than the tar reader does.
    child.finish(false);
    throw;
  }
  child.finish(false);
  return entries;
}

}  // namespace speculators
