// Checkpoint directories: atomic write, symlinks, --keep-last, resume discovery (see train_state.h).
#include "train/train_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

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
  std::error_code probe;
  const auto status = fs::symlink_status(link, probe);
  if (fs::exists(status) && !fs::is_symlink(status)) {
    fail_usage(cat(link.string(), " exists and is not a symlink this trainer made: it is left as it is; move it away "
                   "or choose another --save-path"));
  }
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

void lock_save_path(const fs::path& root) {
  static int held_fd = -1;  // kept open until the process ends; the kernel then releases the lock
  if (held_fd >= 0) return;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail_usage(cat(root.string(), ": cannot create the save path: ", ec.message()));
  const fs::path path = root / ".speculators.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail_usage(cat(path.string(), ": cannot open the save path's lock: ", std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    const std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("unknown");
    fail_usage(cat("--save-path ", root.string(), " is in use by another speculators-train (pid ",
                   holder.substr(0, holder.find_first_of("\n")), ", lock ", path.string(),
                   "): wait for it to end or choose another --save-path"));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    log::warn(cat(path.string(), ": cannot record this process's pid in the lock"));
  }
  held_fd = fd;
}

const std::vector<std::string>& resumable_checkpoint_files() {
  static const std::vector<std::string> files = {"config.json", "model.safetensors", "training_state.json",
                                                 "trainer_state.json", "optimizer_state.safetensors"};
  return files;
}

CheckpointStore::CheckpointStore(fs::path root, std::int64_t keep_last)
    : root_(std::move(root)), keep_last_(keep_last) {
  std::random_device rd;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
  run_id_ = id;
}

bool CheckpointStore::is_checkpoint(const fs::path& dir) const {
  std::error_code ec;
  return !fs::is_symlink(fs::symlink_status(dir, ec)) && fs::is_directory(dir, ec) &&
         fs::is_regular_file(dir / kCheckpointMarker, ec);
}

bool CheckpointStore::is_complete(const fs::path& dir, std::string* missing) const {
  std::string lacks;
  std::error_code ec;
  for (const auto& f : resumable_checkpoint_files()) {
    if (!fs::is_regular_file(dir / f, ec)) lacks += (lacks.empty() ? "" : ", ") + f;
  }
  if (missing) *missing = lacks;
  return lacks.empty();
}

fs::path CheckpointStore::write(std::int64_t epoch, std::int64_t local_step,
                                const std::function<void(const fs::path& dir)>& fill) {
  fs::create_directories(root_);
  remove_stale_temporaries();
  const fs::path final_dir = root_ / std::to_string(epoch);
  const fs::path tmp = root_ / cat(".tmp-", epoch, "-", ::getpid());
  const fs::path old = root_ / cat(".old-", epoch, "-", ::getpid());
  std::error_code ec;
  if (fs::exists(fs::symlink_status(final_dir, ec)) && !is_checkpoint(final_dir)) {
    fail_usage(cat(final_dir.string(), " exists and is not a checkpoint written by speculators-train (it has no ",
                   kCheckpointMarker, "): it is left as it is; move it away or choose another --save-path"));
  }
  fs::remove_all(tmp);
  fs::remove_all(old);
  fs::create_directories(tmp);
  // The marker goes in first: whatever of this directory survives a crash is provably ours.
  {
    std::ofstream marker(tmp / kCheckpointMarker);
    marker << "{\"written_by\": \"speculators-train\", \"run_id\": \"" << run_id_ << "\"}\n";
    if (!marker) fail(cat((tmp / kCheckpointMarker).string(), ": cannot write the checkpoint marker"));
  }
  fill(tmp);
  fsync_tree(tmp);
  if (fs::exists(final_dir)) {
    // Swap the new directory in with one call, so <epoch> is never absent or half written.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
      fail(cat(final_dir.string(), ": cannot swap in the new checkpoint: ", std::strerror(errno)));
    }
    fsync_directory(root_);
    fs::remove_all(tmp);  // now the previous contents
  } else {
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
  // Left by a process killed in the middle of a save; never read, removed at the next save. Only
  // what is provably ours goes: a temporary checkpoint directory with the marker (or still empty,
  // killed before the marker was written) and a temporary symlink.
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string name = entry.path().filename().string();
    const bool temp_dir = name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0;
    if (temp_dir && (is_checkpoint(entry.path()) || fs::is_empty(entry.path(), ec))) {
      stale.push_back(entry.path());
    } else if (!temp_dir && name[0] == '.' && name.find(".tmp-") != std::string::npos &&
               fs::is_symlink(entry.symlink_status())) {
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
    const auto e = epoch_number(entry.path().filename().string());
    if (e && is_checkpoint(entry.path())) out.push_back(*e);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::int64_t> CheckpointStore::complete_epochs() const {
  std::vector<std::int64_t> out;
  for (auto e : epochs()) {
    if (is_complete(root_ / std::to_string(e))) out.push_back(e);
  }
  return out;
}

void CheckpointStore::remove_checkpoint(std::int64_t epoch) {
  fs::remove_all(root_ / std::to_string(epoch));
  remove_epoch_links(epoch);
}

void CheckpointStore::prune() {
  // Only complete checkpoints count and only they are deleted: an incomplete directory next to
  // them (a copy, a hand edit) neither pushes a real checkpoint out nor is removed unseen.
  if (keep_last_ <= 0) return;
  const auto complete = complete_epochs();
  const auto best = best_epoch();
  std::int64_t kept = 0;
  for (auto it = complete.rbegin(); it != complete.rend(); ++it) {
    if (kept < keep_last_) {
      ++kept;
      continue;
    }
    if (best && *best == *it) continue;  // the best checkpoint outlives --keep-last
    remove_checkpoint(*it);
  }
}

void CheckpointStore::remove_all_but(std::int64_t keep) {
  for (auto e : complete_epochs()) {
    if (e != keep) remove_checkpoint(e);
  }
}

std::optional<fs::path> CheckpointStore::newest_resumable() const {
  auto all = epochs();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const fs::path dir = root_ / std::to_string(*it);
    std::string missing;
    if (is_complete(dir, &missing)) return dir;
    log::warn(cat("not resuming from ", dir.string(), ": it lacks ", missing));
  }
  return std::nullopt;
}

}  // namespace speculators
