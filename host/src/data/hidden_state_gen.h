// speculators-datagen hidden-states: runs a verifier over <data>/data.jsonl and writes the
// reference's offline feature files (speculators/data_generation/offline.py) plus the loss-masked
// token counts (speculators/train/vocab_mapping.py). Each file is written under a temporary name
// and renamed (never half-written), with the reference's sibling .lock held meanwhile; an existing
// file that validates is kept, so a killed run restarted with the same arguments does only the rows
// still missing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace speculators {

struct HiddenStateGenOptions {
  std::string verifier_dir;
  std::string data_dir;
  std::vector<std::int64_t> target_layer_ids;  // empty: [2, n/2, n-3] (eagle3's default)
  std::string dtype = "bf16";                  // bf16 (the reference's) or fp32
  std::int64_t batch_tokens = 8192;            // tokens per verifier forward (rows packed, document-masked)
  bool validate = false;                       // re-read every file (also existing ones) and check finiteness
  std::optional<std::int64_t> draft_vocab_size;  // also write d2t.npy / t2d.npy
  bool progress = true;
};

struct HiddenStateGenReport {
  std::int64_t rows = 0;
  std::int64_t written = 0;
  std::int64_t kept = 0;         // existing files that validated
  std::int64_t regenerated = 0;  // existing files that did not (rewritten)
  std::vector<std::int64_t> layer_ids;  // aux ids + the final layer, as stored
};

// speculators/models/utils.py: resolve_target_layer_ids: [2, n/2, n-3] for a verifier with n layers.
std::vector<std::int64_t> default_target_layer_ids(std::int64_t num_layers);

HiddenStateGenReport generate_hidden_states(const HiddenStateGenOptions& options);

}  // namespace speculators
