// Reading a plugin package's archive without trusting it: a streaming reader of the tar format
// (POSIX ustar, GNU long names, pax path records) that lists every entry and refuses, before a
// single byte is written, anything a plugin package has no use for: links, devices, absolute
// paths, "..", more than kMaxPackageEntries entries or more than kMaxPackageBytes of content (a
// tar bomb). The archive comes uncompressed from `gzip -dc` or `dpkg-deb --fsys-tarfile`
// (package_stream), so a compressed bomb is stopped after at most the limit has been read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace speculators {

inline constexpr std::size_t kMaxPackageEntries = 256;
inline constexpr std::uint64_t kMaxPackageBytes = std::uint64_t{1} << 30;  // 1 GiB of file content
inline constexpr std::size_t kMaxPackageNameBytes = 4096;

// One member of the archive: its normalized relative path ("./a/b" -> "a/b", directories
// without the trailing '/'), whether it is a directory, and its size in bytes.
struct PackageEntry {
  std::string path;
  bool directory = false;
  std::uint64_t size = 0;
};

// Reads up to `n` bytes into `buffer`, returning how many (0 at the end of the stream).
using ByteSource = std::function<std::size_t(char* buffer, std::size_t n)>;
// Called for each regular file with its entry and a reader of exactly entry.size bytes of content
// (the caller may read less; the rest is skipped).
using EntryVisitor = std::function<void(const PackageEntry& entry, const ByteSource& content)>;

// Walks the archive in `source`, validating every header and path, and returns the listing.
// `visit` (optional) sees each regular file as it streams past. Throws Error(kPlugin) naming
// `package` and the offending entry on anything malformed or over a limit.
std::vector<PackageEntry> read_package_archive(const ByteSource& source, const std::string& package,
                                               const EntryVisitor& visit = nullptr);

// Streams `package` (.tar.gz/.tgz through `gzip -dc`, .deb through `dpkg-deb --fsys-tarfile`)
// into read_package_archive. A decompressor that fails is reported with its message.
std::vector<PackageEntry> read_package(const std::string& package, const EntryVisitor& visit = nullptr);

}  // namespace speculators
