// Draft vocabulary mapping (speculators/train/vocab_mapping.py): frequency counting, d2t/t2d
// construction, .npy files, validation, and the token_freq.pt / JSON frequency files the mapping is
// built from.
#include "speculators/vocab.h"

#include <torch/serialize.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>
#include <vector>

#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"

namespace speculators {
namespace {

std::string shape_text(const torch::Tensor& t) { return cat(t.sizes()); }

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_data(cat(path, ": cannot open token frequency file"));
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TokenFrequencies frequencies_from_pickle(const std::vector<char>& bytes, const std::string& path) {
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    fail_data(cat(path, ": not a torch.save'd dict of token id -> count (", e.what(), ")"));
  }
  if (!value.isGenericDict()) {
    fail_data(cat(path, ": expected a dict of token id -> count, got ", value.tagKind()));
  }
  TokenFrequencies out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isInt() || !entry.value().isInt()) {
      fail_data(cat(path, ": dict entries must be int -> int, got ", entry.key().tagKind(), " -> ",
                    entry.value().tagKind()));
    }
    out[entry.key().toInt()] += entry.value().toInt();
  }
  return out;
}

TokenFrequencies frequencies_from_json(const std::string& text, const std::string& path) {
  Json parsed;
  try {
    parsed = Json::parse(text, path);
  } catch (const Error& e) {
    fail_data(e.what());
  }
  if (!parsed.is_object()) fail_data(cat(path, ": expected a JSON object of token id -> count"));
  TokenFrequencies out;
  for (const auto& [key, count] : parsed.as_object()) {
    std::size_t used = 0;
    std::int64_t id = 0;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != key.size()) fail_data(cat(path, ": key '", key, "' is not a token id"));
    if (!count.is_int()) fail_data(cat(path, ": count of token ", key, " must be an integer"));
    out[id] += count.as_int();
  }
  return out;
}

}  // namespace

void count_token_frequencies(const torch::Tensor& input_ids, const torch::Tensor& loss_mask,
                             TokenFrequencies& counts) {
  if (input_ids.dim() != 1 || loss_mask.dim() != 1 || input_ids.size(0) != loss_mask.size(0)) {
    fail_data(cat("count_token_frequencies: input_ids ", shape_text(input_ids), " and loss_mask ",
                  shape_text(loss_mask), " must be 1-D of equal length"));
  }
  const auto selected = input_ids.to(torch::kCPU, torch::kLong)
                            .masked_select(loss_mask.to(torch::kCPU).ne(0))
                            .contiguous();
  const auto* ids = selected.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < selected.numel(); ++i) ++counts[ids[i]];
}

VocabMapping build_vocab_mapping(const TokenFrequencies& frequencies, std::int64_t target_vocab_size,
                                 std::int64_t draft_vocab_size) {
  if (target_vocab_size < 1 || draft_vocab_size < 1 || draft_vocab_size > target_vocab_size) {
    fail_usage(cat("draft_vocab_size must be in [1, ", target_vocab_size, "] (the verifier vocab size), got ",
                   draft_vocab_size));
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> by_count;  // (count, id)
  for (const auto& [id, count] : frequencies) {
    if (id < 0 || id >= target_vocab_size) {
      fail_data(cat("token frequencies: token id ", id, " is outside the verifier vocab [0, ",
                    target_vocab_size, ")"));
    }
    if (count < 0) fail_data(cat("token frequencies: token ", id, " has a negative count ", count));
    by_count.emplace_back(count, id);
  }
  // build_vocab_mappings_from_distribution: most frequent first, ties broken by the lower id.
  std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::int64_t> selected;
  std::set<std::int64_t> chosen;
  for (const auto& entry : by_count) {
    if (static_cast<std::int64_t>(selected.size()) == draft_vocab_size) break;
    selected.push_back(entry.second);
    chosen.insert(entry.second);
  }
  // Too few distinct tokens -> pad with 0, 1, 2, ... not yet chosen.
  for (std::int64_t id = 0; static_cast<std::int64_t>(selected.size()) < draft_vocab_size; ++id) {
    if (chosen.count(id) == 0) selected.push_back(id);
  }
  std::sort(selected.begin(), selected.end());
  VocabMapping mapping;
  auto ids = torch::tensor(selected, torch::kLong);
  mapping.d2t = ids - torch::arange(draft_vocab_size, torch::kLong);
  mapping.t2d = torch::zeros({target_vocab_size}, torch::kBool);
  mapping.t2d.index_fill_(0, ids, true);
  return mapping;
}

torch::Tensor draft_to_target_ids(const VocabMapping& mapping) {
  if (mapping.empty()) fail("draft_to_target_ids: no vocab mapping");
  return torch::arange(mapping.d2t.size(0), mapping.d2t.options()) + mapping.d2t;
}

void validate_vocab_mapping(const VocabMapping& mapping, std::int64_t target_vocab_size,
                            std::int64_t draft_vocab_size, const std::string& d2t_origin,
                            const std::string& t2d_origin) {
  if (!mapping.d2t.defined() || !mapping.t2d.defined()) {
    fail_usage(cat("vocab mapping: ", d2t_origin, " and ", t2d_origin, " must be given together"));
  }
  const auto& t2d = mapping.t2d;
  const auto& d2t = mapping.d2t;
  if (t2d.scalar_type() != torch::kBool || t2d.dim() != 1 || t2d.size(0) != target_vocab_size) {
    fail_data(cat(t2d_origin, ": expected bool [", target_vocab_size, "] (the verifier vocab size), got ",
                  t2d.scalar_type(), " ", shape_text(t2d)));
  }
  const std::int64_t selected = t2d.sum().item<std::int64_t>();
  if (selected != draft_vocab_size) {
    fail_data(cat(t2d_origin, ": has ", selected, " true entries; expected draft_vocab_size = ",
                  draft_vocab_size));
  }
  if (d2t.scalar_type() != torch::kLong || d2t.dim() != 1 || d2t.size(0) != draft_vocab_size) {
    fail_data(cat(d2t_origin, ": expected int64 [", draft_vocab_size, "] (draft_vocab_size), got ",
                  d2t.scalar_type(), " ", shape_text(d2t)));
  }
  // Not checked by the reference; a mismatch would make the lm_head rows (chosen through t2d)
  // disagree with the ids vLLM maps draft tokens to (through d2t).
  const auto targets = draft_to_target_ids(mapping).cpu();
  const auto expected = t2d.cpu().nonzero().flatten();
  if (!torch::equal(targets, expected)) {
    const auto bad = targets.ne(expected).nonzero().flatten()[0].item<std::int64_t>();
    fail_data(cat(d2t_origin, ": draft id ", bad, " maps to target id ", targets[bad].item<std::int64_t>(),
                  " but the ", bad, "-th true entry of ", t2d_origin, " is ", expected[bad].item<std::int64_t>(),
                  " (d2t must hold offsets target_id - draft_id of the ascending t2d ids)"));
  }
}

VocabMapping load_vocab_mapping(const std::string& d2t_path, const std::string& t2d_path) {
  if (d2t_path.empty() && t2d_path.empty()) return {};
  if (d2t_path.empty() || t2d_path.empty()) {
    fail_usage(cat("vocab mapping: d2t_path and t2d_path must be given together (got d2t_path='", d2t_path,
                   "', t2d_path='", t2d_path, "')"));
  }
  VocabMapping mapping;
  mapping.d2t = load_npy(d2t_path);
  mapping.t2d = load_npy(t2d_path);
  if (mapping.d2t.is_floating_point() || mapping.d2t.scalar_type() == torch::kBool) {
    fail_data(cat(d2t_path, ": expected an integer array (int64), got ", mapping.d2t.scalar_type()));
  }
  mapping.d2t = mapping.d2t.to(torch::kLong);
  if (mapping.t2d.scalar_type() != torch::kBool) {
    if (mapping.t2d.is_floating_point() || mapping.t2d.ne(0).logical_and(mapping.t2d.ne(1)).any().item<bool>()) {
      fail_data(cat(t2d_path, ": expected a bool array, got ", mapping.t2d.scalar_type(), " with values other than 0/1"));
    }
    mapping.t2d = mapping.t2d.ne(0);
  }
  if (mapping.d2t.dim() != 1) fail_data(cat(d2t_path, ": expected a 1-D array, got shape ", shape_text(mapping.d2t)));
  if (mapping.t2d.dim() != 1) fail_data(cat(t2d_path, ": expected a 1-D array, got shape ", shape_text(mapping.t2d)));
  return mapping;
}

void save_vocab_mapping(const VocabMapping& mapping, const std::string& dir) {
  if (mapping.empty()) fail("save_vocab_mapping: no vocab mapping to save");
  std::filesystem::create_directories(dir);
  save_npy((std::filesystem::path(dir) / "d2t.npy").string(), mapping.d2t.to(torch::kCPU, torch::kLong));
  save_npy((std::filesystem::path(dir) / "t2d.npy").string(), mapping.t2d.to(torch::kCPU, torch::kBool));
}

static TokenFrequencies frequencies_from_npy(const std::string& path) {
  const auto counts = load_npy(path);
  if (counts.dim() != 1 || counts.is_floating_point() || counts.scalar_type() == torch::kBool) {
    fail_data(cat(path, ": expected a 1-D integer array of counts indexed by token id, got ", counts.scalar_type(),
                  " ", shape_text(counts)));
  }
  const auto c = counts.to(torch::kLong).contiguous();
  const auto* values = c.data_ptr<std::int64_t>();
  TokenFrequencies out;
  for (std::int64_t id = 0; id < c.numel(); ++id) {
    if (values[id] < 0) fail_data(cat(path, ": token ", id, " has a negative count ", values[id]));
    if (values[id] > 0) out[id] = values[id];
  }
  return out;
}

TokenFrequencies read_token_frequencies(const std::string& path) {
  const auto bytes = read_bytes(path);
  if (bytes.size() >= 6 && std::string(bytes.begin() + 1, bytes.begin() + 6) == "NUMPY") {
    return frequencies_from_npy(path);
  }
  // torch.save writes a zip archive ("PK"); an old-style pickle starts with the PROTO opcode.
  const bool pickled = bytes.size() >= 2 && ((bytes[0] == 'P' && bytes[1] == 'K') ||
                                             static_cast<unsigned char>(bytes[0]) == 0x80);
  if (pickled) return frequencies_from_pickle(bytes, path);
  return frequencies_from_json(std::string(bytes.begin(), bytes.end()), path);
}

void write_token_frequencies(const std::string& path, const TokenFrequencies& frequencies) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".npy")) {
    const std::int64_t size = frequencies.empty() ? 0 : frequencies.rbegin()->first + 1;
    auto counts = torch::zeros({size}, torch::kLong);
    for (const auto& [id, count] : frequencies) {
      if (id < 0) fail(cat("write_token_frequencies: negative token id ", id));
      counts[id] = count;
    }
    save_npy(path, counts);
    return;
  }
  const bool as_json = ends_with(".json");
  if (as_json) {
    Json out = Json::object();
    for (const auto& [id, count] : frequencies) out[std::to_string(id)] = Json(static_cast<long long>(count));
    write_file_atomic(path, out.dump() + "\n");
    return;
  }
  c10::Dict<std::int64_t, std::int64_t> dict;
  for (const auto& [id, count] : frequencies) dict.insert(id, count);
  const auto bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace speculators
