// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split (regex or literal, every delimiter
// behaviour, invert), ByteLevel (GPT-2 regex and byte-to-character mapping), Metaspace, Digits and
// Sequence, following the `tokenizers` library's NormalizedString::split and pre_tokenizers/.
#include "speculators/error.h"
#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text::detail {

namespace {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  std::size_t begin, end;
  bool flag;  // is a match before the behaviour applies; "remove" after
};

// A literal or a regex, finding matches as the library's Pattern::find_matches does.
class Matcher {
 public:
  Matcher(const Json& pattern, const Where& w) {
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      literal_ = pattern["String"].get<std::string>();
    } else if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>(), w);
    } else {
      w.fail("expected {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
    }
  }
  Matcher(const Where& w, const std::string& regex) : regex_(std::make_unique<Regex>(regex, w)) {}
  explicit Matcher(std::string literal) : literal_(std::move(literal)) {}

  // Matches and the gaps between them, covering `s`.
  void spans(std::string_view s, std::vector<Span>& out) const {
    out.clear();
    if (s.empty()) {
      out.push_back({0, 0, false});
      return;
    }
    std::size_t prev = 0, from = 0, b = 0, e = 0;
    while (from <= s.size()) {
      if (regex_) {
        if (!regex_->find(s, from, b, e)) break;
      } else {
        if (literal_.empty()) break;
        b = s.find(literal_, from);
        if (b == std::string_view::npos) break;
        e = b + literal_.size();
      }
      if (prev != b) out.push_back({prev, b, false});
      out.push_back({b, e, true});
      prev = e;
      if (e == b) {
        if (e >= s.size()) break;
        std::size_t k = e;
        utf8_next(s, k);
        from = k;
      } else {
        from = e;
      }
    }
    if (prev != s.size()) out.push_back({prev, s.size(), false});
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

// NormalizedString::split: applies `behavior` to the match spans, then emits the kept pieces.
void split_by(const Matcher& m, Behavior behavior, bool invert, Piece&& piece, std::vector<Piece>& out) {
  thread_local std::vector<Span> spans, merged;
  m.spans(piece.text, spans);
  if (invert) {
    for (auto& s : spans) s.flag = !s.flag;
  }
  merged.clear();
  bool previous = false;
  switch (behavior) {
    case Behavior::kRemoved:
      merged = spans;
      break;
    case Behavior::kIsolated:
      for (const auto& s : spans) merged.push_back({s.begin, s.end, false});
      break;
    case Behavior::kContiguous:
      for (const auto& s : spans) {
        if (s.flag == previous && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back({s.begin, s.end, false});
        }
        previous = s.flag;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (s.flag && !previous && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back({s.begin, s.end, false});
        }
        previous = s.flag;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->flag && !previous && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back({it->begin, it->end, false});
        }
        previous = it->flag;
      }
      std::reverse(merged.begin(), merged.end());
      break;
  }
  if (merged.size() == 1 && !merged[0].flag && merged[0].begin == 0 && merged[0].end == piece.text.size()) {
    if (!piece.text.empty()) out.push_back(std::move(piece));
    return;
  }
  for (const auto& s : merged) {
    if (s.flag || s.end == s.begin) continue;
    out.push_back({piece.text.substr(s.begin, s.end - s.begin), piece.origin + s.begin, -1});
  }
}

Behavior parse_behavior(const Json& j, const Where& w) {
  const std::string b = string_field(j, "behavior", w);
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  w.at("behavior").fail("unknown split behavior '" + b + "'");
}

class Split : public PreTokenizer {
 public:
  Split(const Json& j, const Where& w)
      : matcher_(field(j, "pattern", w), w.at("pattern")),
        behavior_(parse_behavior(j, w)),
        invert_(bool_field(j, "invert", false, w)) {}
  void split(Piece&& piece, std::vector<Piece>& out) const override {
    split_by(matcher_, behavior_, invert_, std::move(piece), out);
  }

 private:
  Matcher matcher_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(const Json& j, const Where& w)
      : add_prefix_space_(bool_field(j, "add_prefix_space", true, w)), use_regex_(bool_field(j, "use_regex", true, w)) {
    if (use_regex_) regex_ = std::make_unique<Matcher>(w, kGpt2Pattern);
  }
  void split(Piece&& piece, std::vector<Piece>& out) const override {
    if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) piece.text.insert(0, " ");
    const std::size_t first = out.size();
    if (use_regex_) {
      split_by(*regex_, Behavior::kIsolated, false, std::move(piece), out);
    } else if (!piece.text.empty()) {
      out.push_back(std::move(piece));
    }
    for (std::size_t i = first; i < out.size(); ++i) {
      std::string mapped;
      mapped.reserve(out[i].text.size() * 2);
      for (unsigned char b : out[i].text) mapped += byte_to_chars(b);
      out[i].text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
  std::unique_ptr<Matcher> regex_;
};

class Metaspace : public PreTokenizer {
 public:
  Metaspace(const Json& j, const Where& w) {
    const Json& r = field(j, "replacement", w);
    if (!r.is_string()) w.at("replacement").fail("expected a one-character string");
    replacement_ = r.get<std::string>();
    std::size_t k = 0;
    if (replacement_.empty() || (utf8_next(replacement_, k), k != replacement_.size())) {
      w.at("replacement").fail("expected one character, got " + r.dump());
    }
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      const std::string scheme = string_field(j, "prepend_scheme", w);
      if (scheme == "always") {
        scheme_ = 2;
      } else if (scheme == "first") {
        scheme_ = 1;
      } else if (scheme == "never") {
        scheme_ = 0;
      } else {
        w.at("prepend_scheme").fail("expected always, first or never, got '" + scheme + "'");
      }
    } else {
      scheme_ = bool_field(j, "add_prefix_space", true, w) ? 2 : 0;
    }
    split_ = bool_field(j, "split", true, w);
    matcher_ = std::make_unique<Matcher>(replacement_);
  }
  void split(Piece&& piece, std::vector<Piece>& out) const override {
    std::string s;
    s.reserve(piece.text.size() + replacement_.size());
    for (char c : piece.text) {
      if (c == ' ') {
        s += replacement_;
      } else {
        s.push_back(c);
      }
    }
    const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == 2 || (scheme_ == 1 && piece.origin == 0))) s.insert(0, replacement_);
    piece.text = std::move(s);
    if (split_) {
      split_by(*matcher_, Behavior::kMergedWithNext, false, std::move(piece), out);
    } else if (!piece.text.empty()) {
      out.push_back(std::move(piece));
    }
  }

 private:
  std::string replacement_;
  int scheme_ = 2;  // 0 never, 1 first, 2 always
  bool split_ = true;
  std::unique_ptr<Matcher> matcher_;
};

class Digits : public PreTokenizer {
 public:
  Digits(const Json& j, const Where& w)
      : matcher_(w, bool_field(j, "individual_digits", false, w) ? R"(\p{N})" : R"(\p{N}+)") {}
  void split(Piece&& piece, std::vector<Piece>& out) const override {
    split_by(matcher_, Behavior::kIsolated, false, std::move(piece), out);
  }

 private:
  Matcher matcher_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(Piece&& piece, std::vector<Piece>& out) const override {
    std::vector<Piece> current;
    current.push_back(std::move(piece));
    std::vector<Piece> next;
    for (const auto& p : parts_) {
      next.clear();
      for (auto& c : current) p->split(std::move(c), next);
      current.swap(next);
    }
    for (auto& c : current) out.push_back(std::move(c));
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const Where& w) {
  if (j.is_null()) return nullptr;
  const std::string type = string_field(j, "type", w);
  if (type == "Split") return std::make_unique<Split>(j, w);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j, w);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j, w);
  if (type == "Digits") return std::make_unique<Digits>(j, w);
  if (type == "Sequence") {
    const Json& list = field(j, "pretokenizers", w);
    if (!list.is_array()) w.at("pretokenizers").fail("expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = make_pre_tokenizer(list[i], w.at("pretokenizers").at(i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePre>(std::move(parts));
  }
  w.at("type").fail("unsupported pre_tokenizer type '" + type +
                    "' (supported: Split, ByteLevel, Metaspace, Digits, Sequence)");
}

}  // namespace speculators::text::detail
