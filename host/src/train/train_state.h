// The checkpoint contract (docs/training.md, "Checkpoints"; the reference's
// speculators/train/checkpointer.py): what a checkpoint directory holds, how it is written so that
// a crash never leaves a half checkpoint where a resume would read it, which directory a resume
// picks, and the human-readable symlinks next to them.  <save_path>/<epoch>/ one directory per
// saved epoch (mid-epoch saves overwrite it)
//   config.json, model.safetensors   the draft in the reference layout (bf16), what vLLM loads
//   training_state.json              {"epoch", "local_step", "global_step"} as the reference writes it
//   trainer_state.json               everything else the loop needs to continue exactly
//   optimizer_state.safetensors      fp32 master weights ("param/<name>"), optimizer slots
//                                    ("muon/<name>/momentum_buffer", "adamw/<name>/exp_avg", ...)
//                                    and the RNG state ("rng/cpu/rank0")
//   scheduler_state.json             absent with --scheduler-type none
//   run.yaml, train_command.txt      the resolved job and the command that made it
//   d2t.npy, t2d.npy                 the vocabulary mapping, when the draft has one
//   val_metrics.json                 only in an epoch that became the best
//   .speculators-checkpoint          written first: proves the directory is this trainer's
// <save_path>/checkpoint_best -> <epoch>;  epoch<e>_end or epoch<e>_step<s> -> <e>
//
// The save path belongs to the user: the store only ever replaces or deletes a directory that
// holds the marker, so a user's `2024/` or a file named `0` is never touched, and retention
// counts and deletes only complete checkpoints, never the newest complete one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

class CheckpointStore {
 public:
  CheckpointStore(std::filesystem::path root, std::int64_t keep_last);

  // Fills a fresh temporary directory with `fill`, fsyncs it and moves it to <root>/<epoch> in
  // one rename (an existing <epoch> is swapped out atomically, then removed). Then points the
  // epoch<e>_end / epoch<e>_step<s> symlink at it (`local_step` 0 means the epoch's end) and
  // applies --keep-last. Returns the final directory.
  std::filesystem::path write(std::int64_t epoch, std::int64_t local_step,
                              const std::function<void(const std::filesystem::path& dir)>& fill);
  // checkpoint_best -> <epoch> (replaced atomically), then --keep-last.
  void set_best(std::int64_t epoch);
  // --save-best: removes every complete checkpoint and its epoch symlinks except `keep`
  // (checkpointer.py: cleanup_keep_only_best; unlike the reference, run.yaml and the logs stay).
  // Directories without the marker stay.
  void remove_all_but(std::int64_t keep);

  // The newest complete checkpoint (largest integer-named directory holding the marker and every
  // file a resume needs); incomplete ones are skipped with a warning, temporary and symlinked
  // names and directories without the marker ignored.
  std::optional<std::filesystem::path> newest_resumable() const;
  // Epoch numbers of the integer-named directories that hold the marker, ascending.
  std::vector<std::int64_t> epochs() const;
  // The subset of epochs() whose directories hold every file a resume needs.
  std::vector<std::int64_t> complete_epochs() const;
  std::optional<std::int64_t> best_epoch() const;
  const std::filesystem::path& root() const { return root_; }
  // True when `dir` holds every file a resume needs; else `missing` lists what it lacks.
  bool is_complete(const std::filesystem::path& dir, std::string* missing = nullptr) const;

 private:
  void prune();
  void remove_stale_temporaries();
  void remove_epoch_links(std::int64_t epoch);
  bool is_checkpoint(const std::filesystem::path& dir) const;
  void remove_checkpoint(std::int64_t epoch);
  std::filesystem::path root_;
  std::int64_t keep_last_;
  std::string run_id_;
};

// The file that marks a directory as a checkpoint this trainer wrote.
inline constexpr const char* kCheckpointMarker = ".speculators-checkpoint";

// Takes the save path's lock (<root>/.speculators.lock, flock) for the rest of this process, so
// a second trainer on the same --save-path stops at once (exit 2) naming the holder's pid.
void lock_save_path(const std::filesystem::path& root);

// The files newest_resumable() requires in a checkpoint directory.
const std::vector<std::string>& resumable_checkpoint_files();

// fsync of a directory (so a rename inside it is durable); errors name the directory.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace speculators
