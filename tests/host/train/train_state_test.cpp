// Checkpoint directories (docs/training.md; speculators/train/checkpointer.py): atomic replacement,
// the epoch<e>_* and checkpoint_best symlinks, --keep-last, and which directory a resume picks.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "../../core/io_test_util.h"
#include "speculators/error.h"
#include "train/train_state.h"

using namespace speculators;
namespace fs = std::filesystem;

namespace {

void fill_complete(const fs::path& dir, const std::string& marker) {
  for (const auto& f : resumable_checkpoint_files()) std::ofstream(dir / f) << marker;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("checkpoints are written whole, with epoch symlinks and a replaceable best link", "[checkpoint]") {
  test::ScratchDir scratch;
  const fs::path root = scratch.path();
  CheckpointStore store(root, 0);
  store.write(0, 3, [](const fs::path& d) { fill_complete(d, "e0s3"); });
  CHECK(fs::is_symlink(root / "epoch0_step3"));
  CHECK(fs::read_symlink(root / "epoch0_step3") == "0");
  // A later save of the same epoch replaces the directory and its label.
  store.write(0, 0, [](const fs::path& d) { fill_complete(d, "e0end"); });
  CHECK_FALSE(fs::is_symlink(fs::symlink_status(root / "epoch0_step3")));
  CHECK(fs::is_symlink(root / "epoch0_end"));
  CHECK(read(root / "0" / "model.safetensors") == "e0end");
  store.write(1, 0, [](const fs::path& d) { fill_complete(d, "e1"); });
  store.set_best(0);
  CHECK(fs::read_symlink(root / "checkpoint_best") == "0");
  CHECK(store.best_epoch() == 0);
  store.set_best(1);
  CHECK(store.best_epoch() == 1);
  // No temporary directory is left behind.
  for (const auto& entry : fs::directory_iterator(root)) {
    CHECK(entry.path().filename().string().rfind(".tmp-", 0) != 0);
  }
}

TEST_CASE("a failure while filling leaves the previous checkpoint in place", "[checkpoint]") {
  test::ScratchDir scratch;
  CheckpointStore store(scratch.path(), 0);
  store.write(2, 0, [](const fs::path& d) { fill_complete(d, "good"); });
  CHECK_THROWS(store.write(2, 5, [](const fs::path& d) {
    std::ofstream(d / "model.safetensors") << "half";
    throw std::runtime_error("disk full");
  }));
  CHECK(read(fs::path(scratch.path()) / "2" / "model.safetensors") == "good");
  CHECK(store.newest_resumable() == fs::path(scratch.path()) / "2");
}

TEST_CASE("resume picks the newest complete checkpoint and ignores temporary or partial ones", "[checkpoint]") {
  test::ScratchDir scratch;
  const fs::path root = scratch.path();
  CheckpointStore store(root, 0);
  CHECK_FALSE(store.newest_resumable().has_value());
  store.write(1, 0, [](const fs::path& d) { fill_complete(d, "1"); });
  store.write(3, 0, [](const fs::path& d) { fill_complete(d, "3"); });
  // A half-written directory from a killed save, a partial epoch dir, a symlink and an
  // "interrupted" directory are never picked.
  fs::create_directories(root / ".tmp-9-1234");
  fill_complete(root / ".tmp-9-1234", "tmp");
  std::ofstream(root / ".tmp-9-1234" / kCheckpointMarker) << "{}";  // a save writes the marker first
  fs::create_directories(root / ".tmp-user");  // named like a temporary, but without the marker
  std::ofstream(root / ".tmp-user" / "notes.txt") << "mine";
  fs::create_directories(root / "7");
  std::ofstream(root / "7" / "model.safetensors") << "partial";
  fs::create_directories(root / "interrupted");
  fill_complete(root / "interrupted", "x");
  fs::create_directory_symlink("3", root / "12");
  CHECK(store.newest_resumable() == root / "3");
  CHECK(store.epochs() == std::vector<std::int64_t>{1, 3});  // 7 has no marker: not ours
  // A partial directory that is ours (it has the marker) is skipped by a resume too.
  std::ofstream(root / "7" / kCheckpointMarker) << "{}";
  CHECK(store.epochs() == std::vector<std::int64_t>{1, 3, 7});
  CHECK(store.newest_resumable() == root / "3");
  // The next save clears what a killed save left behind.
  store.write(8, 0, [](const fs::path& d) { fill_complete(d, "8"); });
  CHECK_FALSE(fs::exists(root / ".tmp-9-1234"));
  CHECK(fs::exists(root / ".tmp-user" / "notes.txt"));  // not provably ours: left alone
}

TEST_CASE("--keep-last keeps the newest N epochs and the best one", "[checkpoint]") {
  test::ScratchDir scratch;
  const fs::path root = scratch.path();
  CheckpointStore store(root, 2);
  store.write(0, 0, [](const fs::path& d) { fill_complete(d, "0"); });
  store.set_best(0);
  for (int e = 1; e <= 4; ++e) store.write(e, 0, [](const fs::path& d) { fill_complete(d, "x"); });
  CHECK(store.epochs() == std::vector<std::int64_t>{0, 3, 4});
  CHECK_FALSE(fs::is_symlink(root / "epoch1_end"));
  CHECK(fs::is_symlink(root / "epoch4_end"));
  store.remove_all_but(3);
  CHECK(store.epochs() == std::vector<std::int64_t>{3});
}

TEST_CASE("the save path belongs to the user: directories and files without the marker are never touched",
          "[checkpoint]") {
  test::ScratchDir scratch;
  const fs::path root = scratch.path();
  fs::create_directories(root / "2024");
  std::ofstream(root / "2024" / "thesis.tex") << "years of work";
  fs::create_directories(root / "7");
  std::ofstream(root / "7" / "notes.txt") << "mine";
  CheckpointStore store(root, 1);
  for (int e = 0; e <= 3; ++e) store.write(e, 0, [](const fs::path& d) { fill_complete(d, "x"); });
  store.set_best(3);
  store.remove_all_but(-1);  // what --no-resume-from-checkpoint and --save-best call
  CHECK(store.epochs().empty());
  CHECK(read(root / "2024" / "thesis.tex") == "years of work");
  CHECK(read(root / "7" / "notes.txt") == "mine");
  // A user's file where a checkpoint would go is refused (exit 2), not replaced.
  std::ofstream(root / "0") << "user file";
  try {
    store.write(0, 0, [](const fs::path& d) { fill_complete(d, "x"); });
    FAIL("a user's file was replaced by a checkpoint");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK_THAT(e.what(), Catch::Contains("is not a checkpoint written by speculators-train"));
  }
  CHECK(read(root / "0") == "user file");
}

TEST_CASE("--keep-last counts and deletes complete checkpoints only", "[checkpoint]") {
  test::ScratchDir scratch;
  const fs::path root = scratch.path();
  CheckpointStore store(root, 1);
  store.write(1, 0, [](const fs::path& d) { fill_complete(d, "1"); });
  // A copy of checkpoint 1 as 5, made incomplete by hand: it carries the marker.
  fs::copy(root / "1", root / "5", fs::copy_options::recursive);
  fs::remove(root / "5" / "trainer_state.json");
  store.write(2, 0, [](const fs::path& d) { fill_complete(d, "2"); });
  store.write(3, 0, [](const fs::path& d) { fill_complete(d, "3"); });
  store.set_best(3);
  CHECK(store.complete_epochs() == std::vector<std::int64_t>{3});
  CHECK(store.newest_resumable() == root / "3");
  CHECK(fs::exists(root / "5" / "model.safetensors"));  // incomplete: neither counted nor deleted
  CHECK(fs::exists(root / "checkpoint_best" / "model.safetensors"));
}
