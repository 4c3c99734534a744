// speculators-datagen prepare: conversations (or speculator-format rows) -> DATA/data.jsonl and
// DATA/token_freq.npy, as the reference's speculators/data_generation/preprocessing.py:
// load_and_preprocess_dataset: the raw rows are shuffled with the seed and cut to 3 x max-samples,
// each conversation becomes masked token rows (turn_masks.h), speculator-format rows pass through
// cut to the sequence length, rows without a supervised token are dropped, and the rows are
// shuffled again and cut to max-samples. Both files are written under temporary names and renamed,
// and DATA/prepare.json records the arguments last: a run restarted with the same arguments after
// it completed keeps the files, and one killed before never leaves a half-written file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/bad_samples.h"

namespace speculators {

struct PrepareOptions {
  std::string verifier_dir;
  std::string dataset;
  std::string preset = "auto";  // auto, sharegpt, messages, ultrachat
  std::string out;
  std::int64_t seq_length = 8192;  // the reference's prepare-data default
  std::optional<std::int64_t> max_samples;
  std::uint64_t seed = 0;
  std::int64_t num_workers = 0;        // 0: one per CPU
  std::string mask_mode = "per-turn";  // per-turn or all-assistant
  BadSamplePolicy on_bad_sample = BadSamplePolicy::kSkip;
  bool progress = true;
};

struct PrepareReport {
  std::int64_t records = 0;        // rows read from the dataset (after the 3 x max-samples cut)
  std::int64_t rows = 0;           // rows written
  std::int64_t skipped_turns = 0;  // assistant turns whose context filled --seq-length
  std::int64_t unsupervised = 0;   // rows dropped without a supervised token
  std::int64_t empty = 0;          // conversations that gave no row
  std::int64_t bad = 0;            // malformed rows and conversations the template could not render
  std::int64_t supervised_tokens = 0;
  bool kept_existing = false;
};

PrepareReport prepare_dataset(const PrepareOptions& options);

// Fisher-Yates with a 64-bit Mersenne Twister seeded with `seed`: the same order on every platform.
void seeded_shuffle(std::vector<std::size_t>& items, std::uint64_t seed);

}  // namespace speculators
