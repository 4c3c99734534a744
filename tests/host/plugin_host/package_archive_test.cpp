// Plugin packages a stranger made (host/src/plugin_host/package_archive.h, plugin_packages.h):
// archives whose headers claim more than the limit (a tar bomb), links, "..", absolute paths and
// too many entries are refused from the listing, before anything is unpacked, with one line
// naming the package and the entry; the good fixture package still installs. The archives are
// written here header by header (POSIX ustar, computed in the test) or by GNU tar and gzip.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fixture_paths.h"
#include "plugin_host/package_archive.h"
#include "plugin_host/plugin_loader.h"
#include "plugin_host/plugin_packages.h"
#include "plugin_test_util.h"
#include "speculators/error.h"
#include "speculators/log.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

// One 512-byte ustar header: name, octal size, type flag, checksum over the block with the
// checksum field read as spaces.
std::string ustar_header(const std::string& name, unsigned long long size, char type,
                         const std::string& link = "") {
  std::string block(512, '\0');
  std::memcpy(&block[0], name.data(), std::min<std::size_t>(name.size(), 100));
  std::snprintf(&block[100], 8, "%07o", 0644);
  std::snprintf(&block[108], 8, "%07o", 0);
  std::snprintf(&block[116], 8, "%07o", 0);
  std::snprintf(&block[124], 12, "%011llo", size);
  std::snprintf(&block[136], 12, "%011o", 0);
  block[156] = type;
  std::memcpy(&block[157], link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(&block[257], "ustar\0" "00", 8);
  std::memset(&block[148], ' ', 8);
  unsigned sum = 0;
  for (const char c : block) sum += static_cast<unsigned char>(c);
  std::snprintf(&block[148], 8, "%06o", sum);
  return block;
}

// A regular file entry with its content padded to the block size.
std::string ustar_file(const std::string& name, const std::string& content) {
  return ustar_header(name, content.size(), '0') + content + std::string((512 - content.size() % 512) % 512, '\0');
}

// Writes `tar` gzip-compressed (by gzip(1)) to `path`.
void write_tgz(const fs::path& path, const std::string& tar) {
  const fs::path raw = path.string() + ".raw";
  std::ofstream(raw, std::ios::binary) << tar;
  REQUIRE(std::system(cat("gzip -c '", raw.string(), "' > '", path.string(), "'").c_str()) == 0);
}

Error install_error(const std::string& package, const std::string& dir) {
  try {
    install_plugin_package(package, dir, test::this_host());
  } catch (const Error& e) {
    return e;
  }
  FAIL("the package was installed");
  return Error("");
}

const std::string kEnd(1024, '\0');

}  // namespace

TEST_CASE("packages: a tar bomb is refused from its header, nothing is unpacked", "[packages][archive]") {
  test::TempDir temp("pkg_bomb");
  const std::string scratch = temp.dir("tmp");
  const std::string saved = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "";
  ::setenv("TMPDIR", scratch.c_str(), 1);
  // 2 GiB of zeros claimed by the first header; the content that follows is never read.
  const fs::path bomb = temp.path() / "bomb.tar.gz";
  write_tgz(bomb, ustar_header("bomb.bin", 2ull << 30, '0') + std::string(64 * 1024, '\0'));
  const std::string dir = (temp.path() / "plugins").string();
  const Error e = install_error(bomb.string(), dir);
  if (saved.empty()) ::unsetenv("TMPDIR"); else ::setenv("TMPDIR", saved.c_str(), 1);
  CHECK(e.code() == ExitCode::kPlugin);
  CHECK(std::string(e.what()) ==
        cat("plugin package ", bomb.string(),
            ": entry 'bomb.bin' would bring the content past 1024 MiB (2147483648 bytes); refusing to unpack it"));
  CHECK_FALSE(fs::exists(dir));
  CHECK(fs::is_empty(scratch));  // no temporary directory or log left behind
}

TEST_CASE("packages: links, devices, '..' and absolute paths are refused before unpacking", "[packages][archive]") {
  test::TempDir temp("pkg_paths");
  const std::string dir = (temp.path() / "plugins").string();
  const std::string manifest = "{}";
  struct Case {
    std::string tar, message;
  };
  const std::vector<Case> cases = {
      {ustar_header("good_a.so", 0, '2', "/etc/passwd"),
       "entry 'good_a.so' is a link (type '2'); only regular files and directories are allowed"},
      {ustar_header("good_a.so", 0, '1', "other"),
       "entry 'good_a.so' is a link (type '1'); only regular files and directories are allowed"},
      {ustar_header("null", 0, '3'), "entry 'null' is a device (type '3'); only regular files and directories are allowed"},
      {ustar_file("../../evil.so", "x"), "entry '../../evil.so' leaves the package (\"..\")"},
      {ustar_file("./a/../../evil.so", "x"), "entry './a/../../evil.so' leaves the package (\"..\")"},
      {ustar_file("/etc/cron.d/evil", "x"), "entry '/etc/cron.d/evil' is an absolute path"},
      {ustar_file("x.so", "1") + ustar_file("./x.so", "2"), "entry 'x.so' appears twice"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const fs::path package = temp.path() / cat("case", i, ".tar.gz");
    write_tgz(package, ustar_file("good_a.manifest.json", manifest) + cases[i].tar + kEnd);
    const Error e = install_error(package.string(), dir);
    CHECK(e.code() == ExitCode::kPlugin);
    CHECK(std::string(e.what()) == cat("plugin package ", package.string(), ": ", cases[i].message));
    CHECK_FALSE(fs::exists(dir));
  }

  std::string many;
  for (std::size_t i = 0; i <= kMaxPackageEntries; ++i) many += ustar_file(cat("f", i), "");
  const fs::path crowded = temp.path() / "crowded.tar.gz";
  write_tgz(crowded, many + kEnd);
  CHECK(std::string(install_error(crowded.string(), dir).what()) ==
        cat("plugin package ", crowded.string(), ": more than ", kMaxPackageEntries, " entries"));

  const fs::path truncated = temp.path() / "truncated.tar.gz";
  write_tgz(truncated, ustar_header("good_a.so", 4096, '0') + std::string(512, 'x'));
  CHECK(std::string(install_error(truncated.string(), dir).what()) ==
        cat("plugin package ", truncated.string(), ": truncated archive (in the content of 'good_a.so')"));
}

TEST_CASE("packages: the listing reads GNU tar's long names and directories", "[packages][archive]") {
  test::TempDir temp("pkg_listing");
  const std::string deep = temp.dir(std::string("d/") + std::string(150, 'n') + "/e");
  std::ofstream(fs::path(deep) / "f.so") << "12345";
  const fs::path package = temp.path() / "listing.tar.gz";
  REQUIRE(std::system(cat("tar --format=gnu -czf '", package.string(), "' -C '", temp.path().string(), "' d").c_str()) == 0);
  const auto entries = read_package(package.string());
  REQUIRE(entries.size() == 4);
  const std::string long_dir = "d/" + std::string(150, 'n');
  CHECK(entries[0].path == "d");
  CHECK(entries[0].directory);
  CHECK(entries[1].path == long_dir);
  CHECK(entries[2].path == long_dir + "/e");
  CHECK(entries[3].path == long_dir + "/e/f.so");
  CHECK_FALSE(entries[3].directory);
  CHECK(entries[3].size == 5);
}

TEST_CASE("packages: the fixture package still installs through the listing", "[packages][archive]") {
  test::TempDir temp("pkg_listing_ok");
  const std::string dir = (temp.path() / "plugins").string();
  const PluginManifest m = install_plugin_package(SPECULATORS_FIXTURE_PACKAGE_GOOD_A, dir, test::this_host());
  CHECK(m.name == "good_a");
  CHECK(fs::file_size(fs::path(dir) / "good_a.so") == fs::file_size(SPECULATORS_FIXTURE_GOOD_A));
}

TEST_CASE("loader: a plugin linked from a directory others can write to is not opened", "[packages][plugins]") {
  test::TempDir temp("plugin_link");
  const std::string open_dir = temp.dir("open");
  fs::permissions(open_dir, fs::perms(0777));
  const std::string safe = temp.dir("safe");
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, fs::path(open_dir) / "good_a.so");
  const fs::path link = fs::path(safe) / "good_a.so";
  fs::create_symlink(fs::path(open_dir) / "good_a.so", link);
  Registry registry;
  PluginHost plugins(registry, test::this_host());
  const PluginRecord record = plugins.load(link.string());
  CHECK_FALSE(record.ok);
  // "group and others", or "others" where the directory's group is this user's private group.
  CHECK(record.reason.rfind(cat("refusing to open ", link.string(), " (a link to ", open_dir, "/good_a.so): ", open_dir,
                                " is writable by "), 0) == 0);
  CHECK(record.reason.find("others (mode 0777); anyone who can write there can run code in this process") !=
        std::string::npos);
  // The same file reached through a link from a safe directory loads.
  const std::string good = temp.dir("good");
  fs::copy_file(SPECULATORS_FIXTURE_GOOD_A, fs::path(good) / "good_a.so");
  const fs::path safe_link = fs::path(temp.dir("safe2")) / "good_a.so";
  fs::create_symlink(fs::path(good) / "good_a.so", safe_link);
  Registry registry2;
  PluginHost plugins2(registry2, test::this_host());
  CHECK(plugins2.load(safe_link.string()).ok);
}
