// The rows of data.jsonl (token ids and loss mask per conversation, as the reference's
// speculators/data_generation/preprocessing.py writes them): reading and checking them, dropping
// rows without a supervised token, and the contiguous train/validation split.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/bad_samples.h"

namespace speculators {

struct TokenRow {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> loss_mask;
  std::size_t line = 0;  // 1-based line in data.jsonl (0 when the row was not read from a file)
};

// Reads <path> (one JSON object per line with input_ids and loss_mask of equal length). Errors
// name the file and line; blank lines are skipped; an empty file is an error.
std::vector<TokenRow> read_data_jsonl(const std::string& path);

// Throws a data error naming `path` and the line of the first token id outside [0, vocab_size).
void check_token_range(const std::vector<TokenRow>& rows, std::int64_t vocab_size, const std::string& path);

// The indices of rows that have at least one supervised token (loss_mask 1); the others are
// reported to `bad` with the file and line (the reference drops them in
// speculators/data_generation/preprocessing.py).
std::vector<std::size_t> keep_supervised_rows(const std::vector<TokenRow>& rows,
                                              const std::vector<std::size_t>& indices, BadSampleLog& bad,
                                              const std::string& path);

// Contiguous split (speculators/train/data.py: ArrowDataset, split_idx): rows [0, floor(N*r))
// train, the rest validation.
std::pair<std::vector<std::size_t>, std::vector<std::size_t>> split_rows(std::size_t n, double train_ratio);

}  // namespace speculators
