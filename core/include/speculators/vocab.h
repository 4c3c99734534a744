// The draft vocabulary (speculators/train/vocab_mapping.py): choosing the Vd most frequent target
// tokens, the d2t/t2d mapping between draft and target ids, its .npy files (d2t.npy int64, t2d.npy
// bool) and the checks a loaded mapping must pass. Token frequencies count input ids where
// loss_mask == 1.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

#include "speculators/algorithm.h"

namespace speculators {

using TokenFrequencies = std::map<std::int64_t, std::int64_t>;  // token id -> count

// Adds the ids of `input_ids` [T] at positions where `loss_mask` [T] is non-zero to `counts`.
void count_token_frequencies(const torch::Tensor& input_ids, const torch::Tensor& loss_mask,
                             TokenFrequencies& counts);

// As build_vocab_mappings_from_distribution: order ids by (-frequency, id), take the first min(Vd,
// #distinct), pad with ids 0, 1, 2, ... not yet chosen until Vd, sort ascending; d2t = selected -
// arange(Vd) (int64), t2d[selected] = true (bool [V]). Ids outside [0, V) and zero counts are
// rejected.
VocabMapping build_vocab_mapping(const TokenFrequencies& frequencies, std::int64_t target_vocab_size,
                                 std::int64_t draft_vocab_size);

// The target id of every draft id: arange(Vd) + d2t.
torch::Tensor draft_to_target_ids(const VocabMapping& mapping);

// Checks a mapping against the vocab sizes: t2d is bool [V] with Vd true entries, d2t is int64
// [Vd], and the ids d2t points to are exactly the t2d entries. Errors name `d2t_origin` /
// `t2d_origin` (the files) and the value at fault.
void validate_vocab_mapping(const VocabMapping& mapping, std::int64_t target_vocab_size,
                            std::int64_t draft_vocab_size, const std::string& d2t_origin = "d2t",
                            const std::string& t2d_origin = "t2d");

// Reads d2t.npy and t2d.npy. Both paths empty = no mapping; exactly one empty is an error naming
// both. Integer d2t of another width becomes int64; t2d must be bool (or 0/1 integers).
VocabMapping load_vocab_mapping(const std::string& d2t_path, const std::string& t2d_path);
// Writes DIR/d2t.npy (int64) and DIR/t2d.npy (bool).
void save_vocab_mapping(const VocabMapping& mapping, const std::string& dir);

// Token frequencies from the reference's token_freq.pt (a torch.save'd dict {int: int}), a
// token_freq.npy (1-D integer counts indexed by token id) or a JSON object {"id": count}; the
// format is recognised from the content, errors name the file.
TokenFrequencies read_token_frequencies(const std::string& path);
// Writes token frequencies: .npy (counts indexed by id) or .json by the extension, else in
// torch.save's format (a pickled dict {int: int} in a zip archive, readable by torch.load).
void write_token_frequencies(const std::string& path, const TokenFrequencies& frequencies);

}  // namespace speculators
