// See plugin_dirs.h.
#include "plugin_host/plugin_dirs.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

namespace fs = std::filesystem;

std::optional<std::string> unsafe_permissions_reason(const std::string& path, unsigned mode, unsigned owner_uid,
                                                     unsigned user_uid, bool group_private) {
  if (owner_uid != user_uid && owner_uid != 0) {
    return cat(path, " is owned by uid ", owner_uid, ", not by this user (uid ", user_uid,
               ") or root; plugins run as this user, so only they may own plugin files");
  }
  const bool group = (mode & S_IWGRP) != 0 && !group_private, others = (mode & S_IWOTH) != 0;
  if (group || others) {
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", mode & 07777);
    return cat(path, " is writable by ", group && others ? "group and others" : group ? "group" : "others",
               " (mode ", octal, "); anyone who can write there can run code in this process (chmod go-w ", path,
               ")");
  }
  return std::nullopt;
}

namespace {

// A user-private group (Debian/Ubuntu USERGROUPS): named like its owner, whose primary group it
// is, with no other members. Group write permission then gives nobody else access.
bool is_private_group(unsigned gid, unsigned owner_uid) {
  const struct passwd* user = ::getpwuid(owner_uid);
  if (user == nullptr || user->pw_gid != gid) return false;
  const std::string owner_name = user->pw_name;
  const struct group* group = ::getgrgid(gid);
  if (group == nullptr || owner_name != group->gr_name) return false;
  for (char** member = group->gr_mem; member != nullptr && *member != nullptr; ++member) {
    if (owner_name != *member) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> unsafe_path_reason(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return cat(path, ": cannot stat: ", std::strerror(errno));
  const bool group_private = (info.st_mode & S_IWGRP) != 0 && is_private_group(info.st_gid, info.st_uid);
  return unsafe_permissions_reason(path, info.st_mode, info.st_uid, ::geteuid(), group_private);
}

std::optional<std::string> unsafe_link_target_reason(const std::string& path) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) return std::nullopt;  // a missing file is reported by whoever opens it
  const fs::path lexical = fs::absolute(path, ec).lexically_normal();
  if (ec || real == lexical) return std::nullopt;
  if (auto why = unsafe_path_reason(real.parent_path().string())) {
    return cat(path, " (a link to ", real.string(), "): ", *why);
  }
  return std::nullopt;
}

std::string user_plugin_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && xdg[0] == '/') {
    return (fs::path(xdg) / "speculators" / "plugins").string();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
    return (fs::path(home) / ".local" / "share" / "speculators" / "plugins").string();
  }
  return "";
}

}  // namespace speculators
