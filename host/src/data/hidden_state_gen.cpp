// generate_hidden_states (see hidden_state_gen.h).
#include "data/hidden_state_gen.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "data/feature_files.h"
#include "data/feature_source.h"
#include "data/token_rows.h"
#include "observe/progress.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
#include "speculators/vocab.h"

namespace fs = std::filesystem;

namespace speculators {

std::vector<std::int64_t> default_target_layer_ids(std::int64_t num_layers) {
  return {2, num_layers / 2, num_layers - 3};
}

namespace {

// A .lock file nobody holds (its writer was killed between the rename and the unlink).
void remove_if_unheld(const fs::path& lock) {
  const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    ::unlink(lock.c_str());
    ::flock(fd, LOCK_UN);
  }
  ::close(fd);
}

// Leftovers of a killed run: temporary files <name>.tmp.<pid> whose writer no longer exists,
// and lock files nobody holds.
void remove_stale_temporaries(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("hs_", 0) == 0 && name.size() > 5 && name.compare(name.size() - 5, 5, ".lock") == 0) {
      remove_if_unheld(entry.path());
      continue;
    }
    const auto at = name.rfind(".tmp.");
    if (at == std::string::npos || name.rfind("hs_", 0) != 0) continue;
    const std::string pid_text = name.substr(at + 5);
    // A "pid" of more digits than pid_t holds was not written by a process: not ours to remove.
    if (pid_text.empty() || pid_text.size() > 10 || pid_text.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const long long pid_value = std::stoll(pid_text);  // at most 10 digits: never out of range
    if (pid_value > std::numeric_limits<pid_t>::max()) continue;
    const auto pid = static_cast<pid_t>(pid_value);
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(entry.path());
  }
}

// Atomic write (temporary name + rename inside save_safetensors) while holding the sibling
// .lock that readers wait on (as speculators/cli/generate_offline_data.py).
void write_hs_file(const std::string& path, const torch::Tensor& hidden, const torch::Tensor& token_ids) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) fail_data(cat(lock_path, ": cannot create the lock file (", std::strerror(errno), ")"));
  ::flock(fd, LOCK_EX);
  try {
    save_safetensors(path, {{"hidden_states", hidden}, {"token_ids", token_ids}});
  } catch (...) {
    ::flock(fd, LOCK_UN);
    ::close(fd);
    throw;
  }
  ::unlink(lock_path.c_str());
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

// speculators/train/vocab_mapping.py: save_token_frequency_distribution: input ids counted where
// loss_mask == 1, over every row; an existing file is kept.
TokenFrequencies token_counts(const std::vector<TokenRow>& rows, const std::string& data_dir) {
  const std::string path = (fs::path(data_dir) / "token_freq.npy").string();
  if (fs::exists(path)) {
    log::info(cat(path, " exists; kept (delete it to recount)"));
    return read_token_frequencies(path);
  }
  TokenFrequencies freq;
  for (const auto& row : rows) {
    count_token_frequencies(torch::tensor(row.input_ids, torch::kInt64), torch::tensor(row.loss_mask, torch::kInt64),
                            freq);
  }
  write_token_frequencies(path, freq);
  log::info(cat("wrote ", path, " (", freq.size(), " distinct supervised tokens)"));
  return freq;
}

std::vector<std::int64_t> resolve_layer_ids(const HiddenStateGenOptions& o, std::int64_t n) {
  auto ids = o.target_layer_ids.empty() ? default_target_layer_ids(n) : o.target_layer_ids;
  for (auto id : ids) {
    if (id < 0 || id > n) fail_usage(cat("--target-layer-ids: ", id, " is outside [0, ", n, "] for this verifier"));
  }
  ids.push_back(n);  // the final layer is always appended
  return ids;
}

std::string rate_text(std::int64_t done, std::chrono::steady_clock::time_point start) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char text[48];
  std::snprintf(text, sizeof(text), "samples/s=%.1f", static_cast<double>(done) / std::max(elapsed, 1e-9));
  return text;
}

}  // namespace

HiddenStateGenReport generate_hidden_states(const HiddenStateGenOptions& o) {
  if (o.dtype != "bf16" && o.dtype != "fp32") fail_usage(cat("--dtype must be bf16 or fp32, got ", o.dtype));
  if (o.batch_tokens < 1) fail_usage(cat("--batch-tokens must be >= 1, got ", o.batch_tokens));
  if (!fs::is_directory(o.data_dir)) fail_usage(cat("--data ", o.data_dir, ": not a directory"));
  const std::string jsonl = (fs::path(o.data_dir) / "data.jsonl").string();
  auto rows = read_data_jsonl(jsonl);
  VerifierModel verifier = load_verifier(o.verifier_dir);
  verifier->eval();
  const TransformerConfig& config = verifier->config();
  check_token_range(rows, config.vocab_size, jsonl);
  HiddenStateGenReport report;
  report.rows = static_cast<std::int64_t>(rows.size());
  report.layer_ids = resolve_layer_ids(o, config.num_hidden_layers);
  const auto slots = static_cast<std::int64_t>(report.layer_ids.size());
  const auto dtype = o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32;

  const fs::path dir = fs::path(o.data_dir) / "hidden_states";
  fs::create_directories(dir);
  remove_stale_temporaries(dir);
  const TokenFrequencies freq = token_counts(rows, o.data_dir);
  if (o.draft_vocab_size) {
    const auto vd = *o.draft_vocab_size;
    if (vd < 1 || vd > config.vocab_size) fail_usage(cat("--draft-vocab-size must be in [1, ", config.vocab_size, "], got ", vd));
    save_vocab_mapping(build_vocab_mapping(freq, config.vocab_size, vd), o.data_dir);
    log::info(cat("wrote ", o.data_dir, "/{d2t,t2d}.npy (", vd, " of ", config.vocab_size, " tokens)"));
  }

  // Resume: keep every file that validates (ids and shapes; finiteness too with --validate).
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string path = hs_file_path(o.data_dir, i);
    if (!fs::exists(path)) {
      todo.push_back(i);
      continue;
    }
    try {
      read_hs_file(path, i, rows[i], slots, config.hidden_size, o.validate);
      ++report.kept;
    } catch (const Error& e) {
      log::warn(cat("regenerating: ", e.what()));
      ++report.regenerated;
      todo.push_back(i);
    }
  }
  if (report.kept > 0) log::info(cat("kept ", report.kept, " existing files that validate"));

  ProgressBar bar("hidden states", static_cast<std::int64_t>(todo.size()));
  const auto start = std::chrono::steady_clock::now();
  std::size_t next = 0;
  while (next < todo.size()) {
    std::vector<const TokenRow*> group;
    std::vector<std::size_t> group_ids;
    std::int64_t tokens = 0;
    while (next < todo.size()) {
      const auto len = static_cast<std::int64_t>(rows[todo[next]].input_ids.size());
      if (!group.empty() && tokens + len > o.batch_tokens) break;
      group.push_back(&rows[todo[next]]);
      group_ids.push_back(todo[next++]);
      tokens += len;
    }
    auto features = verifier_features(*verifier, group, report.layer_ids);
    for (std::size_t k = 0; k < group.size(); ++k) {
      const std::string path = hs_file_path(o.data_dir, group_ids[k]);
      write_hs_file(path, features[k].to(dtype).contiguous(), torch::tensor(group[k]->input_ids, torch::kInt64));
      if (o.validate) read_hs_file(path, group_ids[k], *group[k], slots, config.hidden_size, /*check_finite=*/true);
      ++report.written;
    }
    if (o.progress) bar.update(report.written, rate_text(report.written, start));
  }
  if (o.progress) bar.finish(rate_text(report.written, start));
  return report;
}

}  // namespace speculators
