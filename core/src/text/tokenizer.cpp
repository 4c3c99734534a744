// Tokenizer: loads a tokenizer.json and runs the `tokenizers` library's pipeline
// (tokenizer/mod.rs: encode_single_sequence, decode): added tokens are cut out of the raw text
// first (those with normalized=false), each remaining part is normalized and cut again by the
// normalized added tokens, then pre-tokenized, then given to the BPE model; the post-processor
// adds its special tokens. Decoding maps ids to tokens and runs the decoder chain.
#include "speculators/text/tokenizer.h"

#include <unicode/uchar.h>

#include <fstream>
#include <sstream>
#include <unordered_set>

#include "speculators/error.h"
#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text {

using detail::Json;
using detail::Piece;
using detail::Where;

namespace {

struct AddedToken {
  std::string content;
  std::string pattern;  // what is matched: content, normalized when `normalized`
  std::string decoded;  // what decoding yields (the normalized form, as the library caches it)
  std::uint32_t id = 0;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// Leftmost-longest matching of a set of added tokens (the library's MatchKind::LeftmostLongest).
class AddedMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->pattern.empty()) return;
    by_byte_[static_cast<unsigned char>(t->pattern[0])].push_back(t);
    empty_ = false;
  }
  void finish() {
    for (auto& list : by_byte_) {
      std::stable_sort(list.begin(), list.end(),
                       [](const AddedToken* a, const AddedToken* b) { return a->pattern.size() > b->pattern.size(); });
    }
  }
  bool empty() const { return empty_; }
  // The next match at or after `from`: its token, start and end; nullptr when none.
  const AddedToken* next(std::string_view s, std::size_t from, std::size_t& begin) const {
    for (std::size_t i = from; i < s.size(); ++i) {
      const auto& list = by_byte_[static_cast<unsigned char>(s[i])];
      for (const AddedToken* t : list) {
        if (s.compare(i, t->pattern.size(), t->pattern) == 0) {
          begin = i;
          return t;
        }
      }
    }
    return nullptr;
  }

 private:
  std::vector<const AddedToken*> by_byte_[256];
  bool empty_ = true;
};

char32_t char_before(std::string_view s, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return utf8_next(s, start);
}

// Rust regex's Unicode \w.
bool is_word_char(char32_t c) {
  if (u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC) ||
      u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_JOIN_CONTROL)) {
    return true;
  }
  const auto mask = U_GET_GC_MASK(static_cast<UChar32>(c));
  return (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}

}  // namespace

struct TokenizerImpl {
  std::string origin;
  std::unique_ptr<detail::BpeModel> model;
  std::unique_ptr<detail::Normalizer> normalizer;
  std::unique_ptr<detail::PreTokenizer> pre_tokenizer;
  std::unique_ptr<detail::Decoder> decoder;
  detail::PostTemplate post;
  std::vector<AddedToken> added;  // stable storage for the matchers
  std::unordered_map<std::uint32_t, std::size_t> added_by_id;
  std::unordered_map<std::string, std::uint32_t> added_by_content;
  std::unordered_set<std::string> special_contents;
  AddedMatcher raw_matcher, normalized_matcher;

  void load_added_tokens(const Json& list, const Where& w);
  void split_added(Piece&& piece, const AddedMatcher& m, std::vector<Piece>& out) const;
};

void TokenizerImpl::load_added_tokens(const Json& list, const Where& w) {
  if (list.is_null()) return;
  if (!list.is_array()) w.fail("expected an array");
  added.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Where wi = w.at(i);
    const Json& j = list[i];
    AddedToken t;
    t.content = detail::string_field(j, "content", wi);
    const Json& id = detail::field(j, "id", wi);
    if (!id.is_number_unsigned()) wi.at("id").fail("expected a non-negative id, got " + id.dump());
    t.id = id.get<std::uint32_t>();
    t.special = detail::bool_field(j, "special", false, wi);
    t.normalized = detail::bool_field(j, "normalized", !t.special, wi);
    t.lstrip = detail::bool_field(j, "lstrip", false, wi);
    t.rstrip = detail::bool_field(j, "rstrip", false, wi);
    t.single_word = detail::bool_field(j, "single_word", false, wi);
    t.pattern = t.content;
    if (t.normalized && normalizer) normalizer->normalize(t.pattern);
    t.decoded = t.pattern;
    added_by_id[t.id] = added.size();
    added_by_content[t.content] = t.id;
    if (t.special) special_contents.insert(t.content);
    added.push_back(std::move(t));
  }
  for (const auto& t : added) (t.normalized ? normalized_matcher : raw_matcher).add(&t);
  raw_matcher.finish();
  normalized_matcher.finish();
}

// AddedVocabulary::find_matches: cuts `piece` at the added tokens `m` finds.
void TokenizerImpl::split_added(Piece&& piece, const AddedMatcher& m, std::vector<Piece>& out) const {
  const std::string& s = piece.text;
  if (m.empty() || s.empty()) {
    if (!s.empty()) out.push_back(std::move(piece));
    return;
  }
  std::size_t start_offset = 0, from = 0, begin = 0;
  const std::size_t first = out.size();
  while (const AddedToken* t = m.next(s, from, begin)) {
    std::size_t start = begin, stop = begin + t->pattern.size();
    from = stop;
    if (t->single_word) {
      std::size_t k = stop;
      const bool start_space = start == 0 || !is_word_char(char_before(s, start));
      const bool stop_space = stop == s.size() || !is_word_char(utf8_next(s, k));
      if (!start_space || !stop_space) continue;
    }
    if (t->lstrip) {
      std::size_t newstart = start;
      while (newstart > 0 && detail::is_white_space(char_before(s, newstart))) {
        --newstart;
        while (newstart > 0 && (static_cast<unsigned char>(s[newstart]) & 0xC0) == 0x80) --newstart;
      }
      start = std::max(newstart, start_offset);
    }
    if (t->rstrip) {
      while (stop < s.size()) {
        std::size_t k = stop;
        if (!detail::is_white_space(utf8_next(s, k))) break;
        stop = k;
      }
    }
    if (start_offset < start) out.push_back({s.substr(start_offset, start - start_offset), piece.origin + start_offset, -1});
    out.push_back({s.substr(start, stop - start), piece.origin + start, t->id});
    start_offset = stop;
  }
  if (out.size() == first) {
    out.push_back(std::move(piece));
    return;
  }
  if (start_offset < s.size()) out.push_back({s.substr(start_offset), piece.origin + start_offset, -1});
}

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_usage(path + ": cannot open the tokenizer file");
  std::stringstream buf;
  buf << in.rdbuf();
  return from_json(buf.str(), path);
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& origin) {
  const Where top{origin, ""};
  Json j;
  try {
    j = Json::parse(json.begin(), json.end());
  } catch (const Json::exception& e) {
    top.fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) top.fail("expected a JSON object");
  auto impl = std::make_unique<TokenizerImpl>();
  impl->origin = origin;
  auto truncation = j.find("truncation");
  if (truncation != j.end() && !truncation->is_null()) top.at("truncation").fail("truncation is not supported; set it to null");
  auto padding = j.find("padding");
  if (padding != j.end() && !padding->is_null()) {
    const auto strategy = padding->is_object() ? padding->find("strategy") : padding->end();
    if (!(strategy != padding->end() && strategy->is_string() && strategy->get<std::string>() == "BatchLongest")) {
      top.at("padding").fail("only null or BatchLongest padding is supported (a single sequence is never padded)");
    }
  }
  const Json& model = detail::field(j, "model", top);
  const Where wm = top.at("model");
  if (!model.is_object()) wm.fail("expected a JSON object");
  const auto type = model.find("type");
  if (type != model.end() && !(type->is_string() && type->get<std::string>() == "BPE")) {
    wm.at("type").fail("unsupported model type " + type->dump() + " (supported: BPE)");
  }
  impl->model = std::make_unique<detail::BpeModel>(model, wm);
  const Json null_json;
  const auto get = [&](const char* key) -> const Json& {
    auto it = j.find(key);
    return it == j.end() ? null_json : *it;
  };
  impl->normalizer = detail::make_normalizer(get("normalizer"), top.at("normalizer"));
  impl->pre_tokenizer = detail::make_pre_tokenizer(get("pre_tokenizer"), top.at("pre_tokenizer"));
  impl->decoder = detail::make_decoder(get("decoder"), top.at("decoder"));
  impl->post = detail::make_post_processor(get("post_processor"), top.at("post_processor"));
  impl->load_added_tokens(get("added_tokens"), top.at("added_tokens"));
  Tokenizer tok(std::move(impl));
  for (const auto* ids : {&tok.impl_->post.before, &tok.impl_->post.after}) {
    for (std::uint32_t id : *ids) {
      if (!tok.id_to_token(id)) {
        top.at("post_processor").fail("special token id " + std::to_string(id) +
                                      " is neither in the vocabulary nor an added token");
      }
    }
  }
  return tok;
}

std::vector<std::uint32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerImpl& t = *impl_;
  std::vector<Piece> raw, normalized, words;
  Piece whole{utf8_valid(text) ? std::string(text) : detail::utf8_lossy(text), 0, -1};
  t.split_added(std::move(whole), t.raw_matcher, raw);
  for (auto& p : raw) {
    if (p.added_id >= 0) {
      normalized.push_back(std::move(p));
      continue;
    }
    if (t.normalizer) t.normalizer->normalize(p.text);
    t.split_added(std::move(p), t.normalized_matcher, normalized);
  }
  std::vector<std::uint32_t> ids;
  if (add_special_tokens) ids = t.post.before;
  ids.reserve(text.size() / 3 + 8);
  for (auto& p : normalized) {
    if (p.added_id >= 0) {
      ids.push_back(static_cast<std::uint32_t>(p.added_id));
      continue;
    }
    if (!t.pre_tokenizer) {
      t.model->tokenize(p.text, ids);
      continue;
    }
    words.clear();
    t.pre_tokenizer->split(std::move(p), words);
    for (const auto& w : words) t.model->tokenize(w.text, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), t.post.after.begin(), t.post.after.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<std::uint32_t>& ids, bool skip_special_tokens) const {
  const TokenizerImpl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::uint32_t id : ids) {
    const std::string* token = nullptr;
    auto added = t.added_by_id.find(id);
    if (added != t.added_by_id.end()) {
      const AddedToken& a = t.added[added->second];
      if (skip_special_tokens && t.special_contents.count(a.content) != 0) continue;
      tokens.push_back(a.decoded);
      continue;
    }
    token = t.model->id_to_token(id);
    if (token == nullptr) continue;
    if (skip_special_tokens && t.special_contents.count(*token) != 0) continue;
    tokens.push_back(*token);
  }
  if (!t.decoder) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  t.decoder->decode_chain(tokens);
  std::string out;
  for (const auto& s : tokens) out += s;
  return out;
}

std::optional<std::uint32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(std::string(token));
  if (it != impl_->added_by_content.end()) return it->second;
  std::uint32_t id = 0;
  if (impl_->model->token_to_id(token, id)) return id;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(std::uint32_t id) const {
  auto it = impl_->added_by_id.find(id);
  if (it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

std::size_t Tokenizer::vocab_size() const {
  std::size_t overlapping = 0;
  for (const auto& [content, id] : impl_->added_by_content) {
    std::uint32_t model_id = 0;
    if (impl_->model->token_to_id(content, model_id)) ++overlapping;
  }
  return impl_->model->size() + impl_->added_by_content.size() - overlapping;
}

bool Tokenizer::is_special(std::uint32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

}  // namespace speculators::text
