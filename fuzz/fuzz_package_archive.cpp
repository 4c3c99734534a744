// libFuzzer driver for the plugin package listing (host/src/plugin_host/package_archive.h:
// read_package_archive), which walks an untrusted archive's headers before anything of it is
// written. Any input must either be refused with speculators::Error or give a listing whose
// paths are relative, free of "..", and whose sizes stay within the limit. Anything else is a
// finding.
#include <algorithm>
#include <cstring>
#include <string>

#include "fuzz_input.h"
#include "plugin_host/package_archive.h"
#include "speculators/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t at = 0;
  const speculators::ByteSource source = [&](char* out, std::size_t n) {
    const std::size_t k = std::min(n, size - at);
    std::memcpy(out, data + at, k);
    at += k;
    return k;
  };
  std::uint64_t seen = 0;
  try {
    const auto entries = speculators::read_package_archive(
        source, "fuzz.tar", [&](const speculators::PackageEntry& entry, const speculators::ByteSource& content) {
          char buffer[256];
          for (std::size_t k; (k = content(buffer, sizeof buffer)) > 0;) seen += k;
          speculators::fuzz::require(seen <= speculators::kMaxPackageBytes && entry.size <= speculators::kMaxPackageBytes);
        });
    speculators::fuzz::require(entries.size() <= speculators::kMaxPackageEntries);
    for (const auto& entry : entries) {
      speculators::fuzz::require(!entry.path.empty() && entry.path.front() != '/');
      speculators::fuzz::require(("/" + entry.path + "/").find("/../") == std::string::npos);
    }
  } catch (const speculators::Error& e) {
    speculators::fuzz::require(std::string(e.what()).find('\n') == std::string::npos);
  }
  return 0;
}
