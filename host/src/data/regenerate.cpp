// speculators-datagen regenerate (see regenerate.h).
#include "data/regenerate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include "data/conversations.h"
#include "data/turn_masks.h"
#include "eval/cached_verifier.h"
#include "observe/progress.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/verifier.h"

namespace speculators {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

namespace {

constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();

// End-of-turn tokens of the common template families, when the vocabulary has them as specials,
// and the template's eos_token.
std::vector<std::int64_t> stop_ids(const ChatEncoder& enc) {
  std::vector<std::int64_t> ids;
  const auto& tok = enc.tokenizer();
  for (const char* s : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<end_of_turn>",
                        "<|return|>", "</s>"}) {
    if (auto id = tok.token_to_id(s); id && tok.is_special(*id)) ids.push_back(*id);
  }
  if (auto id = tok.token_to_id(enc.chat_template().eos_token); id) ids.push_back(*id);
  if (ids.empty()) fail_data("the verifier's tokenizer has no end-of-turn token (eos_token or a known one)");
  return ids;
}

std::int64_t pick(const torch::Tensor& logits, const RegenerateOptions& o, torch::Generator& gen) {
  torch::Tensor l = logits.reshape({-1}).to(torch::kCPU, torch::kFloat);
  if (o.temperature <= 0) return l.argmax().item<std::int64_t>();
  torch::Tensor probs = torch::softmax(l / o.temperature, -1);
  if (o.top_p < 1.0) {
    auto [sorted, index] = probs.sort(-1, /*descending=*/true);
    torch::Tensor drop = (sorted.cumsum(-1) - sorted) > o.top_p;  // keep the smallest set reaching top_p
    sorted.masked_fill_(drop, 0.0);
    probs = torch::zeros_like(probs).scatter(-1, index, sorted);
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, gen).item<std::int64_t>();
}

struct Conversation {
  OJson messages = OJson::array();
  std::int64_t turns = 0, tokens = 0;
};

class TurnGenerator {
 public:
  TurnGenerator(VerifierModelImpl& verifier, const ChatEncoder& enc, const std::vector<std::int64_t>& stops,
                const RegenerateOptions& o, std::uint64_t seed)
      : cache_(verifier), enc_(enc), stops_(stops), o_(o), gen_(at::detail::createCPUGenerator(seed)) {}

  // The verifier's response to `messages`; the cache keeps the tokens shared with the last render.
  std::string respond(const OJson& messages, const OJson& tools, std::int64_t& tokens) {
    std::vector<std::int64_t> ids = enc_.encode(messages, true, tools, kNoLimit);
    if (ids.empty()) fail_data("the chat template renders the conversation as no token");
    std::size_t p = 0;
    while (p < cached_.size() && p < ids.size() && cached_[p] == ids[p]) ++p;
    if (p == ids.size()) --p;  // the last context token is run again for its logits
    cache_.truncate(static_cast<std::int64_t>(p));
    torch::Tensor logits = step({ids.begin() + static_cast<std::ptrdiff_t>(p), ids.end()});
    std::vector<std::uint32_t> out;
    for (std::int64_t n = 0; n < o_.max_new_tokens; ++n) {
      const std::int64_t t = pick(logits, o_, gen_);
      if (std::find(stops_.begin(), stops_.end(), t) != stops_.end()) break;
      out.push_back(static_cast<std::uint32_t>(t));
      ids.push_back(t);
      if (n + 1 < o_.max_new_tokens) logits = step({t});
    }
    cached_ = ids;
    if (cache_.length() < static_cast<std::int64_t>(cached_.size())) cached_.resize(cache_.length());
    tokens += static_cast<std::int64_t>(out.size());
    return enc_.tokenizer().decode(out, /*skip_special_tokens=*/true);
  }

 private:
  torch::Tensor step(const std::vector<std::int64_t>& tokens) {
    torch::Tensor t = torch::tensor(tokens, torch::kInt64).reshape({1, -1}).to(torch::Device(o_.device));
    return cache_.step(t, /*last_logits_only=*/true).logits;
  }
  CachedVerifier cache_;
  const ChatEncoder& enc_;
  const std::vector<std::int64_t>& stops_;
  const RegenerateOptions& o_;
  torch::Generator gen_;
  std::vector<std::int64_t> cached_;
};

// speculators/cli/regenerate_responses.py: extract_conversation: system, user and tool turns are
// kept, the recorded assistant turns dropped, and every user turn answered by the verifier.
Conversation regenerate_one(VerifierModelImpl& verifier, const ChatEncoder& enc, const std::vector<std::int64_t>& stops,
                            const DatasetRecord& r, const RegenerateOptions& o, std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  TurnGenerator gen(verifier, enc, stops, o, seed);
  Conversation c;
  for (const auto& turn : r.messages) {
    const std::string role = turn.value("role", "");
    if (role == "assistant") continue;
    c.messages.push_back(OJson{{"role", role}, {"content", turn.value("content", "")}});
    if (role != "user") continue;
    const std::string reply = gen.respond(c.messages, r.tools, c.tokens);
    c.messages.push_back(OJson{{"role", "assistant"}, {"content", reply}});
    ++c.turns;
  }
  return c;
}

// The index of the last complete line of `path` plus one (0 when none); a partial last line
// (a run killed while writing it) is cut off.
std::int64_t resume_point(const std::string& path) {
  if (!fs::exists(path)) return 0;
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t end = text.rfind('\n');
  const std::size_t keep = end == std::string::npos ? 0 : end + 1;
  if (keep != text.size()) fs::resize_file(path, keep);
  if (keep == 0) return 0;
  const std::size_t prev = keep >= 2 ? text.rfind('\n', keep - 2) : std::string::npos;
  const std::size_t start = prev == std::string::npos ? 0 : prev + 1;
  const std::string last = text.substr(start, keep - 1 - start);
  const OJson j = OJson::parse(last, nullptr, false);
  if (!j.is_object() || !j.contains("index") || !j["index"].is_number_integer()) {
    fail_data(cat(path, ": the last line is not a line this command wrote (no \"index\"); use a new --out"));
  }
  return j["index"].get<std::int64_t>() + 1;
}

void append_line(int fd, const std::string& line, const std::string& path) {
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0) fail(cat(path, ": write failed (", std::strerror(errno), ")"));
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
}

}  // namespace

RegenerateReport regenerate_responses(const RegenerateOptions& o) {
  if (o.max_new_tokens < 1) fail_usage(cat("--max-new-tokens: ", o.max_new_tokens, " is not at least 1"));
  if (o.batch_size < 1) fail_usage(cat("--batch-size: ", o.batch_size, " is not at least 1"));
  if (o.temperature < 0) fail_usage(cat("--temperature: ", o.temperature, " is negative"));
  if (!(o.top_p > 0 && o.top_p <= 1)) fail_usage(cat("--top-p: ", o.top_p, " is not in (0, 1]"));
  BadSampleLog bad(o.on_bad_sample);
  const auto records = read_conversation_dataset(o.dataset, DatasetPreset::kAuto, bad);
  const ChatEncoder enc(o.verifier_dir);
  const auto stops = stop_ids(enc);
  VerifierModel verifier = load_verifier(o.verifier_dir);
  verifier->to(torch::Device(o.device));
  verifier->eval();
  RegenerateReport report;
  report.conversations = static_cast<std::int64_t>(records.size());
  if (fs::path(o.out).has_parent_path()) fs::create_directories(fs::path(o.out).parent_path());
  const std::int64_t first = resume_point(o.out);
  report.kept = std::min<std::int64_t>(first, report.conversations);
  const int fd = ::open(o.out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail_data(cat(o.out, ": cannot open for appending (", std::strerror(errno), ")"));
  ProgressBar bar("regenerate", report.conversations - report.kept, o.progress ? 10.0 : 1e9);
  for (std::int64_t b = first; b < report.conversations; b += o.batch_size) {
    const std::int64_t n = std::min(o.batch_size, report.conversations - b);
    std::vector<Conversation> done(static_cast<std::size_t>(n));
    std::vector<std::string> errors(static_cast<std::size_t>(n));
    std::vector<std::thread> threads;
    for (std::int64_t k = 0; k < n; ++k) {
      threads.emplace_back([&, k] {
        const auto& r = records[static_cast<std::size_t>(b + k)];
        try {
          if (r.pretokenized) fail_data("a speculator-format row (input_ids) has no conversation to regenerate");
          done[k] = regenerate_one(*verifier, enc, stops, r, o, o.seed + static_cast<std::uint64_t>(b + k));
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (std::int64_t k = 0; k < n; ++k) {
      if (!errors[k].empty()) {
        bad.report(cat(records[static_cast<std::size_t>(b + k)].origin, ": ", errors[k]));
        continue;
      }
      append_line(fd, OJson{{"index", b + k}, {"messages", done[k].messages}}.dump() + "\n", o.out);
      ++report.written;
      report.turns += done[k].turns;
      report.tokens += done[k].tokens;
    }
    bar.update(b + n - report.kept, cat(report.tokens, " tokens"));
  }
  bar.finish(cat(report.tokens, " tokens"));
  ::close(fd);
  report.bad = bad.count();
  return report;
}

}  // namespace speculators
