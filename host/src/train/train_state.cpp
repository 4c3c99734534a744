// Checkpoint directories: atomic write, symlinks, --keep-last, resume discovery (see train_state.h).
#include "train/train_state.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "speculators/error.h"
#include "speculators/log.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

std::optional<std::int64_t> epoch_number(const std::string& name) {
  if (name.empty() || name.size() > 12 || !std::all_of(name.begin(), name.end(), ::isdigit)) return std::nullopt;
  return std::stoll(name);
}

void fsync_tree(const fs::path& dir) {
  // Files written by save_safetensors / write_file_atomic are already fsynced; the directory
  // entries of the temporary directory are not.
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_directory()) fsync_directory(entry.path());
  }
  fsync_directory(dir);
}

// Replaces `link` by a symlink to `target` in one rename.
void replace_symlink(const fs::path& link, const std::string& target) {
  const fs::path tmp = link.parent_path() / cat(".", link.filename().string(), ".tmp-", ::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_directory_symlink(target, tmp, ec);
  if (ec) fail(cat(tmp.string(), ": cannot create a symlink: ", ec.message()));
  fs::rename(tmp, link, ec);
  if (ec) fail(cat(link.string(), ": cannot replace the symlink: ", ec.message()));
}

}  // namespace

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail(cat(dir.string(), ": cannot open the directory to sync it: ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail(cat(dir.string(), ": fsync failed: ", std::strerror(err)));
}

const std::vector<std::string>& resumable_checkpoint_files() {
  static const std::vector<std::string> files = {"config.json", "model.safetensors", "training_state.json",
                                                 "trainer_state.json", "optimizer_state.safetensors"};
  return files;
}

CheckpointStore::CheckpointStore(fs::path root, std::int64_t keep_last)
    : root_(std::move(root)), keep_last_(keep_last) {}

fs::path CheckpointStore::write(std::int64_t epoch, std::int64_t local_step,
                                const std::function<void(const fs::path& dir)>& fill) {
  fs::create_directories(root_);
  remove_stale_temporaries();
  const fs::path final_dir = root_ / std::to_string(epoch);
  const fs::path tmp = root_ / cat(".tmp-", epoch, "-", ::getpid());
  const fs::path old = root_ / cat(".old-", epoch, "-", ::getpid());
  fs::remove_all(tmp);
  fs::remove_all(old);
  fs::create_directories(tmp);
  fill(tmp);
  fsync_tree(tmp);
  if (fs::exists(final_dir) && !fs::is_symlink(final_dir)) {
    // Swap the new directory in with one call, so <epoch> is never absent or half written.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
      fail(cat(final_dir.string(), ": cannot swap in the new checkpoint: ", std::strerror(errno)));
    }
    fsync_directory(root_);
    fs::remove_all(tmp);  // now the previous contents
  } else {
    std::error_code ec;
    fs::rename(tmp, final_dir, ec);
    if (ec) fail(cat(final_dir.string(), ": cannot move the checkpoint into place: ", ec.message()));
    fsync_directory(root_);
  }
  remove_epoch_links(epoch);
  const std::string label = local_step == 0 ? cat("epoch", epoch, "_end") : cat("epoch", epoch, "_step", local_step);
  replace_symlink(root_ / label, std::to_string(epoch));
  prune();
  return final_dir;
}

void CheckpointStore::remove_stale_temporaries() {
  // Left by a process killed in the middle of a save; never read, removed at the next save.
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0 ||
        (name[0] == '.' && name.find(".tmp-") != std::string::npos)) {
      stale.push_back(entry.path());
    }
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
}

void CheckpointStore::set_best(std::int64_t epoch) {
  replace_symlink(root_ / "checkpoint_best", std::to_string(epoch));
  prune();  // the previous best may now fall outside --keep-last
}

std::optional<std::int64_t> CheckpointStore::best_epoch() const {
  std::error_code ec;
  const fs::path link = root_ / "checkpoint_best";
  if (!fs::is_symlink(link, ec)) return std::nullopt;
  return epoch_number(fs::read_symlink(link, ec).filename().string());
}

void CheckpointStore::remove_epoch_links(std::int64_t epoch) {
  const std::string prefix = cat("epoch", epoch, "_");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && fs::is_symlink(entry.symlink_status())) fs::remove(entry.path(), ec);
  }
}

std::vector<std::int64_t> CheckpointStore::epochs() const {
  std::vector<std::int64_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (fs::is_symlink(entry.symlink_status()) || !entry.is_directory()) continue;
    if (auto e = epoch_number(entry.path().filename().string())) out.push_back(*e);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void CheckpointStore::prune() {
  if (keep_last_ <= 0) return;
  auto all = epochs();
  const auto best = best_epoch();
  std::int64_t kept = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (kept < keep_last_) {
      ++kept;
      continue;
    }
    if (best && *best == *it) continue;  // the best checkpoint outlives --keep-last
    fs::remove_all(root_ / std::to_string(*it));
    remove_epoch_links(*it);
  }
}

void CheckpointStore::remove_all_but(std::int64_t keep) {
  for (auto e : epochs()) {
    if (e == keep) continue;
    fs::remove_all(root_ / std::to_string(e));
    remove_epoch_links(e);
  }
}

std::optional<fs::path> CheckpointStore::newest_resumable() const {
  auto all = epochs();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const fs::path dir = root_ / std::to_string(*it);
    std::string missing;
    for (const auto& f : resumable_checkpoint_files()) {
      if (!fs::exists(dir / f)) missing += (missing.empty() ? "" : ", ") + f;
    }
    if (missing.empty()) return dir;
    log::warn(cat("not resuming from ", dir.string(), ": it lacks ", missing));
  }
  return std::nullopt;
}

}  // namespace speculators
