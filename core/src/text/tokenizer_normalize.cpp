// Normalizers of tokenizer.json ("normalizer"): Unicode NFC/NFD/NFKC/NFKD and Lowercase through
// ICU, Sequence, Prepend, Replace (literal or regex) and Strip, as the `tokenizers` library's
// normalizers/ modules define them.
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "speculators/error.h"
#include "text/tokenizer_parts.h"
#include "text/utf8.h"

namespace speculators::text::detail {

namespace {

std::u16string to_utf16(const std::string& s) {
  std::u16string out(s.size() + 1, u'\0');
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strFromUTF8WithSub(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &n, s.data(),
                       static_cast<int32_t>(s.size()), 0xFFFD, nullptr, &err);
  if (U_FAILURE(err)) fail_data(std::string("tokenizer: UTF-8 to UTF-16 failed: ") + u_errorName(err));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string to_utf8(const std::u16string& s) {
  std::string out(s.size() * 3 + 1, '\0');
  int32_t n = 0;
  UErrorCode err = U_ZERO_ERROR;
  u_strToUTF8WithSub(out.data(), static_cast<int32_t>(out.size()), &n, reinterpret_cast<const UChar*>(s.data()),
                     static_cast<int32_t>(s.size()), 0xFFFD, nullptr, &err);
  if (U_FAILURE(err)) fail_data(std::string("tokenizer: UTF-16 to UTF-8 failed: ") + u_errorName(err));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// True when every byte of `s` is below `lead_limit` (0x80: ASCII, stable under every form).
bool all_below(const std::string& s, unsigned char lead_limit) {
  for (unsigned char b : s) {
    if (b >= lead_limit) return false;
  }
  return true;
}

class UnicodeNormalizer : public Normalizer {
 public:
  UnicodeNormalizer(const std::string& form, const Where& w) {
    UErrorCode err = U_ZERO_ERROR;
    if (form == "NFC") {
      norm_ = unorm2_getNFCInstance(&err);
    } else if (form == "NFD") {
      norm_ = unorm2_getNFDInstance(&err);
    } else if (form == "NFKC") {
      norm_ = unorm2_getNFKCInstance(&err);
    } else {
      norm_ = unorm2_getNFKDInstance(&err);
    }
    if (U_FAILURE(err)) w.fail("ICU has no " + form + " data: " + u_errorName(err));
  }
  void normalize(std::string& s) const override {
    if (all_below(s, 0x80)) return;
    const std::u16string in = to_utf16(s);
    UErrorCode err = U_ZERO_ERROR;
    if (unorm2_isNormalized(norm_, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()), &err) &&
        U_SUCCESS(err)) {
      return;
    }
    err = U_ZERO_ERROR;
    std::u16string out(in.size() * 4 + 16, u'\0');
    const int32_t n = unorm2_normalize(norm_, reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()),
                                       reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()), &err);
    if (U_FAILURE(err)) fail_data(std::string("tokenizer: Unicode normalization failed: ") + u_errorName(err));
    out.resize(static_cast<std::size_t>(n));
    s = to_utf8(out);
  }

 private:
  const UNormalizer2* norm_ = nullptr;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    if (all_below(s, 0x80)) {
      for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      return;
    }
    const std::u16string in = to_utf16(s);
    std::u16string out(in.size() * 3 + 16, u'\0');
    UErrorCode err = U_ZERO_ERROR;
    const int32_t n = u_strToLower(reinterpret_cast<UChar*>(out.data()), static_cast<int32_t>(out.size()),
                                   reinterpret_cast<const UChar*>(in.data()), static_cast<int32_t>(in.size()), "", &err);
    if (U_FAILURE(err)) fail_data(std::string("tokenizer: lowercasing failed: ") + u_errorName(err));
    out.resize(static_cast<std::size_t>(n));
    s = to_utf8(out);
  }
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string text) : text_(std::move(text)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, text_);
  }

 private:
  std::string text_;
};

class Replace : public Normalizer {
 public:
  Replace(const Json& j, const Where& w) : content_(string_field(j, "content", w)) {
    const Json& pattern = field(j, "pattern", w);
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      literal_ = pattern["String"].get<std::string>();
    } else if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex_ = std::make_unique<Regex>(pattern["Regex"].get<std::string>(), w.at("pattern"));
    } else {
      w.at("pattern").fail("expected {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
    }
  }
  void normalize(std::string& s) const override {
    std::string out;
    std::size_t pos = 0, b = 0, e = 0;
    while (pos <= s.size()) {
      if (regex_) {
        if (!regex_->find(s, pos, b, e)) break;
      } else {
        if (literal_.empty()) break;
        b = s.find(literal_, pos);
        if (b == std::string::npos) break;
        e = b + literal_.size();
      }
      out.append(s, pos, b - pos);
      out += content_;
      if (e == b) {  // an empty match consumes one character
        if (b >= s.size()) {
          pos = s.size() + 1;
          break;
        }
        std::size_t k = b;
        utf8_next(s, k);
        out.append(s, b, k - b);
        e = k;
      }
      pos = e;
    }
    if (pos < s.size()) out.append(s, pos, std::string::npos);
    s = std::move(out);
  }

 private:
  std::string content_;
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    std::size_t begin = 0, end = s.size();
    if (left_) {
      while (begin < end) {
        std::size_t k = begin;
        if (!is_white_space(utf8_next(s, k))) break;
        begin = k;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        std::size_t k = start;
        if (!is_white_space(utf8_next(s, k))) break;
        end = start;
      }
    }
    s = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

}  // namespace

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const Where& w) {
  if (j.is_null()) return nullptr;
  const std::string type = string_field(j, "type", w);
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(type, w);
  }
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(j, "prepend", w));
  if (type == "Replace") return std::make_unique<Replace>(j, w);
  if (type == "Strip") {
    return std::make_unique<Strip>(bool_field(j, "strip_left", false, w), bool_field(j, "strip_right", false, w));
  }
  if (type == "Sequence") {
    const Json& list = field(j, "normalizers", w);
    if (!list.is_array()) w.at("normalizers").fail("expected an array");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto p = make_normalizer(list[i], w.at("normalizers").at(i));
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<Sequence>(std::move(parts));
  }
  w.at("type").fail("unsupported normalizer type '" + type +
                    "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence)");
}

}  // namespace speculators::text::detail
