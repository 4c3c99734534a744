// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocabulary, ranked merges, and the
// word merge of the `tokenizers` library (models/bpe/word.rs: Word::merge_all, lowest rank first,
// leftmost on ties), with byte fallback to <0xXX> tokens, unknown-token fusing and ignore_merges.
#include <cstdio>
#include <queue>

#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text::detail {

namespace {
constexpr std::size_t kCacheCapacity = 100000;
constexpr std::size_t kCacheMaxWordBytes = 256;

std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) { return (std::uint64_t{a} << 32) | b; }

std::size_t char_len(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

std::string optional_string(const Json& j, const char* name, const Where& w) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) w.at(name).fail("expected a string or null, got " + it->dump());
  return it->get<std::string>();
}
}  // namespace

BpeModel::BpeModel(const Json& j, const Where& w) {
  auto dropout = j.find("dropout");
  if (dropout != j.end() && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    w.at("dropout").fail("BPE dropout is not supported (got " + dropout->dump() + ")");
  }
  const Json& vocab = field(j, "vocab", w);
  if (!vocab.is_object()) w.at("vocab").fail("expected an object of token -> id");
  std::size_t max_id = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_unsigned()) w.at("vocab").at(it.key()).fail("expected a non-negative id, got " + it->dump());
    max_id = std::max<std::size_t>(max_id, it->get<std::uint64_t>());
  }
  if (!vocab.empty() && max_id >= (std::size_t{1} << 31)) w.at("vocab").fail("id " + std::to_string(max_id) + " too large");
  tokens_.resize(vocab.empty() ? 0 : max_id + 1);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) tokens_[it->get<std::uint64_t>()] = it.key();
  vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const auto id = static_cast<std::uint32_t>(it->get<std::uint64_t>());
    vocab_[tokens_[id]] = id;
  }

  prefix_ = optional_string(j, "continuing_subword_prefix", w);
  suffix_ = optional_string(j, "end_of_word_suffix", w);
  if (prefix_.empty() && suffix_.empty()) {  // a table for the common one-character lookups
    char_ids_.assign(0x800, -1);
    for (const auto& [token, id] : vocab_) {
      std::size_t k = 0;
      const char32_t c = token.empty() ? 0 : utf8_next(token, k);
      if (!token.empty() && k == token.size() && c < 0x800 && c != 0xFFFD) char_ids_[c] = id;
    }
  }
  fuse_unk_ = bool_field(j, "fuse_unk", false, w);
  byte_fallback_ = bool_field(j, "byte_fallback", false, w);
  ignore_merges_ = bool_field(j, "ignore_merges", false, w);
  const std::string unk = optional_string(j, "unk_token", w);
  if (!unk.empty()) {
    std::uint32_t id = 0;
    if (!token_to_id(unk, id)) w.at("unk_token").fail("'" + unk + "' is not in the vocabulary");
    unk_id_ = id;
  }
  if (byte_fallback_) {
    have_byte_ids_ = true;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      std::uint32_t id = 0;
      if (token_to_id(name, id)) {
        byte_ids_[b] = id;
      } else {
        have_byte_ids_ = false;  // per-character lookups then decide, as the library does
      }
    }
  }

  load_merges(field(j, "merges", w), w.at("merges"));
}

void BpeModel::load_merges(const Json& merges, const Where& w) {
  if (!merges.is_array()) w.fail("expected an array");
  merges_.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const Json& m = merges[i];
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        w.at(i).fail("expected \"left right\", got " + m.dump());
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      w.at(i).fail("expected a pair of strings, got " + m.dump());
    }
    std::uint32_t ida = 0, idb = 0, idn = 0;
    if (!token_to_id(a, ida)) w.at(i).fail("'" + a + "' is not in the vocabulary");
    if (!token_to_id(b, idb)) w.at(i).fail("'" + b + "' is not in the vocabulary");
    if (b.size() < prefix_.size()) w.at(i).fail("'" + b + "' is shorter than the subword prefix");
    const std::string joined = a + b.substr(prefix_.size());
    if (!token_to_id(joined, idn)) w.at(i).fail("'" + joined + "' is not in the vocabulary");
    merges_[pair_key(ida, idb)] = {static_cast<std::uint32_t>(i), idn};
  }
}

const std::string* BpeModel::id_to_token(std::uint32_t id) const {
  if (id >= tokens_.size()) return nullptr;
  auto it = vocab_.find(tokens_[id]);
  if (it == vocab_.end() || it->second != id) return nullptr;
  return &tokens_[id];
}

bool BpeModel::token_to_id(std::string_view token, std::uint32_t& id) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return false;
  id = it->second;
  return true;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<std::uint32_t>& ids,
                               std::vector<std::uint32_t>& lens) const {
  std::int64_t unk = -1;
  std::uint32_t unk_len = 0;
  std::string scratch;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t n = std::min(char_len(static_cast<unsigned char>(word[i])), word.size() - i);
    const std::string_view ch = word.substr(i, n);
    const bool first = i == 0;
    i += n;
    std::string_view s = ch;
    if ((!first && !prefix_.empty()) || (i == word.size() && !suffix_.empty())) {
      scratch.assign(!first ? prefix_ : std::string());
      scratch.append(ch);
      if (i == word.size()) scratch.append(suffix_);
      s = scratch;
    }
    std::uint32_t id = 0;
    bool found = false;
    if (!char_ids_.empty() && (n == 1 || n == 2)) {
      std::size_t k = 0;
      const char32_t c = utf8_next(ch, k);
      found = char_ids_[c] >= 0;
      id = static_cast<std::uint32_t>(char_ids_[c]);
    } else {
      found = token_to_id(s, id);
    }
    if (found) {
      if (unk >= 0) {
        ids.push_back(static_cast<std::uint32_t>(unk));
        lens.push_back(unk_len);
        unk = -1;
      }
      ids.push_back(id);
      lens.push_back(static_cast<std::uint32_t>(n));
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      std::vector<std::uint32_t> bytes;
      for (unsigned char b : s) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        std::uint32_t bid = 0;
        if (have_byte_ids_) {
          bid = byte_ids_[b];
        } else if (!token_to_id(name, bid)) {
          all = false;
          break;
        }
        bytes.push_back(bid);
      }
      if (all) {
        for (auto bid : bytes) {
          ids.push_back(bid);
          lens.push_back(1);
        }
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (unk >= 0 && fuse_unk_) {
        unk_len += static_cast<std::uint32_t>(n);
      } else {
        if (unk >= 0) {
          ids.push_back(static_cast<std::uint32_t>(unk));
          lens.push_back(unk_len);
        }
        unk = unk_id_;
        unk_len = static_cast<std::uint32_t>(n);
      }
    }
  }
  if (unk >= 0) {
    ids.push_back(static_cast<std::uint32_t>(unk));
    lens.push_back(unk_len);
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<std::uint32_t>& out) const {
  std::vector<std::uint32_t> c, len;
  initial_symbols(word, c, len);
  const auto n = static_cast<std::int64_t>(c.size());
  std::vector<std::int64_t> prev(c.size()), next(c.size());
  for (std::int64_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Merge {
    std::int64_t pos;
    std::uint32_t rank, id;
  };
  const auto later = [](const Merge& x, const Merge& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::priority_queue<Merge, std::vector<Merge>, decltype(later)> queue(later);
  const auto lookup = [&](std::int64_t a, std::int64_t b, Merge& m) {
    auto it = merges_.find(pair_key(c[a], c[b]));
    if (it == merges_.end()) return false;
    m = {a, it->second.first, it->second.second};
    return true;
  };
  Merge m{};
  for (std::int64_t i = 0; i + 1 < n; ++i) {
    if (lookup(i, i + 1, m)) queue.push(m);
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    if (len[top.pos] == 0 || next[top.pos] == -1) continue;
    const std::int64_t right = next[top.pos];
    auto it = merges_.find(pair_key(c[top.pos], c[right]));
    if (it == merges_.end() || it->second.second != top.id) continue;
    c[top.pos] = top.id;
    len[top.pos] += len[right];
    next[top.pos] = next[right];
    len[right] = 0;
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0 && lookup(prev[top.pos], top.pos, m)) queue.push(m);
    if (next[top.pos] >= 0 && lookup(top.pos, next[top.pos], m)) queue.push(m);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (len[i] != 0) out.push_back(c[i]);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<std::uint32_t>& out) const {
  if (word.empty()) return;
  std::uint32_t id = 0;
  if (ignore_merges_ && token_to_id(word, id)) {
    out.push_back(id);
    return;
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  thread_local std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::size_t start = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(key, std::vector<std::uint32_t>(out.begin() + start, out.end()));
  }
}

}  // namespace speculators::text::detail
