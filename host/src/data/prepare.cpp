// speculators-datagen prepare (see prepare.h).
#include "data/prepare.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/conversations.h"
#include "data/turn_masks.h"
#include "observe/progress.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/vocab.h"

namespace speculators {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

void seeded_shuffle(std::vector<std::size_t>& items, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = items.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(items[i - 1], items[j]);
  }
}

namespace {

struct RecordResult {
  ConversationRows rows;
  std::string error;  // non-empty: the conversation could not be rendered
};

OJson manifest_of(const PrepareOptions& o) {
  return OJson{{"verifier", fs::absolute(o.verifier_dir).lexically_normal().string()},
               {"dataset", fs::absolute(o.dataset).lexically_normal().string()},
               {"preset", o.preset},
               {"seq_length", o.seq_length},
               {"max_samples", o.max_samples ? OJson(*o.max_samples) : OJson(nullptr)},
               {"seed", o.seed},
               {"mask_mode", o.mask_mode}};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void validate(const PrepareOptions& o) {
  if (o.seq_length < 1) fail_usage(cat("--seq-length: ", o.seq_length, " is not at least 1"));
  if (o.max_samples && *o.max_samples < 1) fail_usage(cat("--max-samples: ", *o.max_samples, " is not at least 1"));
  if (o.num_workers < 0) fail_usage(cat("--num-workers: ", o.num_workers, " is negative"));
  if (o.mask_mode != "per-turn" && o.mask_mode != "all-assistant") {
    fail_usage(cat("--mask-mode: '", o.mask_mode, "' is not per-turn or all-assistant"));
  }
  parse_dataset_preset(o.preset);
}

// Renders every conversation of `order` on `workers` threads; speculator-format rows pass through
// cut to the sequence length (speculators/data_generation/preprocessing.py: _passthrough_pretokenized).
std::vector<RecordResult> render_all(const std::vector<DatasetRecord>& records, const std::vector<std::size_t>& order,
                                     const ChatEncoder* encoder, const PrepareOptions& o) {
  std::vector<RecordResult> results(order.size());
  std::atomic<std::size_t> next{0}, done{0};
  auto work = [&] {
    for (std::size_t k = next++; k < order.size(); k = next++) {
      const DatasetRecord& r = records[order[k]];
      RecordResult& out = results[k];
      try {
        if (r.pretokenized) {
          const std::size_t n = std::min<std::size_t>(r.input_ids.size(), static_cast<std::size_t>(o.seq_length));
          out.rows.rows.push_back(MaskedRow{{r.input_ids.begin(), r.input_ids.begin() + static_cast<std::ptrdiff_t>(n)},
                                            {r.loss_mask.begin(), r.loss_mask.begin() + static_cast<std::ptrdiff_t>(n)}});
        } else if (o.mask_mode == "per-turn") {
          out.rows = per_turn_rows(*encoder, r.messages, r.tools, o.seq_length);
        } else {
          out.rows = all_assistant_rows(*encoder, r.messages, r.tools, o.seq_length);
        }
      } catch (const std::exception& e) {
        out.error = e.what();
      }
      ++done;
    }
  };
  std::int64_t workers = o.num_workers > 0 ? o.num_workers : std::max<std::int64_t>(1, std::thread::hardware_concurrency());
  workers = std::min<std::int64_t>(workers, std::max<std::size_t>(order.size(), 1));
  std::vector<std::thread> threads;
  for (std::int64_t i = 0; i < workers; ++i) threads.emplace_back(work);
  {
    std::unique_ptr<ProgressBar> bar;
    if (o.progress) bar = std::make_unique<ProgressBar>("prepare", static_cast<std::int64_t>(order.size()));
    while (done.load() < order.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (bar) bar->update(static_cast<std::int64_t>(done.load()), "conversations");
    }
    if (bar) bar->finish("conversations");
  }
  for (auto& t : threads) t.join();
  return results;
}

void write_outputs(const std::vector<MaskedRow>& rows, const PrepareOptions& o, PrepareReport& report) {
  std::string text;
  TokenFrequencies freq;
  for (const auto& row : rows) {
    nlohmann::json j{{"input_ids", row.input_ids}, {"loss_mask", row.loss_mask}};
    text += j.dump();
    text += '\n';
    for (std::size_t i = 0; i < row.input_ids.size(); ++i) {
      if (row.loss_mask[i] != 0) {
        ++freq[row.input_ids[i]];
        ++report.supervised_tokens;
      }
    }
  }
  const fs::path out(o.out);
  write_file_atomic((out / "data.jsonl").string(), text);
  const fs::path tmp = out / ".token_freq.tmp.npy";
  write_token_frequencies(tmp.string(), freq);
  fs::rename(tmp, out / "token_freq.npy");
  write_file_atomic((out / "prepare.json").string(), manifest_of(o).dump(2) + "\n");
}

}  // namespace

PrepareReport prepare_dataset(const PrepareOptions& o) {
  validate(o);
  PrepareReport report;
  const fs::path out(o.out);
  const fs::path manifest = out / "prepare.json";
  if (fs::exists(manifest) && fs::exists(out / "data.jsonl") && fs::exists(out / "token_freq.npy") &&
      OJson::parse(read_text(manifest), nullptr, false) == manifest_of(o)) {
    report.kept_existing = true;
    std::ifstream in(out / "data.jsonl");
    for (std::string line; std::getline(in, line);) report.rows += line.empty() ? 0 : 1;
    return report;
  }
  fs::create_directories(out);
  fs::remove(manifest);  // a run with other arguments (or killed midway) must not look complete

  BadSampleLog bad(o.on_bad_sample);
  const std::vector<DatasetRecord> records = read_conversation_dataset(o.dataset, parse_dataset_preset(o.preset), bad);
  std::vector<std::size_t> order(records.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  seeded_shuffle(order, o.seed);
  if (o.max_samples && order.size() > static_cast<std::size_t>(3 * *o.max_samples)) {
    order.resize(static_cast<std::size_t>(3 * *o.max_samples));
  }
  report.records = static_cast<std::int64_t>(order.size());
  std::unique_ptr<ChatEncoder> encoder;
  const bool any_chat = std::any_of(order.begin(), order.end(), [&](std::size_t i) { return !records[i].pretokenized; });
  if (any_chat) encoder = std::make_unique<ChatEncoder>(o.verifier_dir);

  std::vector<RecordResult> results = render_all(records, order, encoder.get(), o);
  std::vector<MaskedRow> rows;
  for (std::size_t k = 0; k < results.size(); ++k) {
    RecordResult& r = results[k];
    if (!r.error.empty()) {
      bad.report(cat(records[order[k]].origin, ": ", r.error));
      continue;
    }
    report.skipped_turns += r.rows.skipped_turns;
    std::size_t kept = 0;
    for (auto& row : r.rows.rows) {
      if (std::none_of(row.loss_mask.begin(), row.loss_mask.end(), [](std::int64_t m) { return m != 0; })) {
        ++report.unsupervised;
        continue;
      }
      rows.push_back(std::move(row));
      ++kept;
    }
    report.empty += kept == 0 ? 1 : 0;
  }
  report.bad = bad.count();
  std::vector<std::size_t> row_order(rows.size());
  for (std::size_t i = 0; i < row_order.size(); ++i) row_order[i] = i;
  seeded_shuffle(row_order, o.seed);
  if (o.max_samples && row_order.size() > static_cast<std::size_t>(*o.max_samples)) {
    row_order.resize(static_cast<std::size_t>(*o.max_samples));
  }
  if (row_order.empty()) {
    fail_data(cat("--dataset ", o.dataset, ": no rows remain after preprocessing (", report.bad, " malformed, ",
                  report.unsupervised, " without a supervised token, ", report.skipped_turns,
                  " turns past --seq-length ", o.seq_length, ")"));
  }
  std::vector<MaskedRow> chosen;
  chosen.reserve(row_order.size());
  for (auto i : row_order) chosen.push_back(std::move(rows[i]));
  report.rows = static_cast<std::int64_t>(chosen.size());
  write_outputs(chosen, o, report);
  return report;
}

}  // namespace speculators
