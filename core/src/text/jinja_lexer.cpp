// Lexing of chat templates with jinja2's whitespace rules (jinja2/lexer.py: Lexer.tokeniter):
// `{%-`/`-%}` strip all whitespace on that side; with lstrip_blocks, the spaces and tabs between
// a line start and `{%` or `{#` go; with trim_blocks, one newline after `%}` or `#}` goes.
#include "text/jinja_lexer.h"

#include <cctype>
#include <cstdint>

#include "speculators/error.h"
#include "text/utf8.h"

namespace speculators::text::jinja {

void template_error(int line, int column, const std::string& message) {
  fail_usage("chat template line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      std::size_t m = find_tag(pos_);
      std::string text = src_.substr(pos_, m - pos_);
      const int text_line = line_, text_col = col_;
      if (m < src_.size()) {
        const char kind = src_[m + 1];
        const char sign = m + 2 < src_.size() ? src_[m + 2] : '\0';
        if (sign == '-') {
          while (!text.empty() && is_space(text.back())) text.pop_back();
        } else if (sign != '+' && kind != '{') {
          const std::size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
          bool blank = l_pos < text.size();
          for (std::size_t k = l_pos; k < text.size(); ++k) blank = blank && is_space(text[k]);
          if (blank && (l_pos > 0 || line_starting)) text.resize(l_pos);
        }
      }
      if (!text.empty()) tokens_.push_back({Token::Type::kText, text, text_line, text_col});
      advance_to(m);
      if (m >= src_.size()) break;
      line_starting = tag(src_[m + 1]);
    }
    tokens_.push_back({Token::Type::kEof, "", line_, col_});
    return std::move(tokens_);
  }

 private:
  std::size_t find_tag(std::size_t from) const {
    for (std::size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return src_.size();
  }

  void advance_to(std::size_t target) {
    while (pos_ < target && pos_ < src_.size()) {
      if (src_[pos_] == '\n') {
        ++line_;
        col_ = 1;
      } else if ((static_cast<unsigned char>(src_[pos_]) & 0xC0) != 0x80) {
        ++col_;
      }
      ++pos_;
    }
  }

  // Lexes the tag that starts at pos_; returns whether what it consumed ends a line.
  bool tag(char kind) {
    const int line = line_, col = col_;
    advance_to(pos_ + 2);
    if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) advance_to(pos_ + 1);
    if (kind == '#') {
      const std::size_t end = src_.find("#}", pos_);
      if (end == std::string::npos) template_error(line, col, "unclosed comment: missing '#}'");
      const bool strip = end > pos_ && src_[end - 1] == '-';
      advance_to(end + 2);
      return after_tag(strip, true);
    }
    const bool block = kind == '%';
    tokens_.push_back({block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "", line, col});
    int depth = 0;
    const char close = block ? '%' : '}';
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance_to(pos_ + 1);
      if (pos_ >= src_.size())
        template_error(line, col, std::string("unclosed tag: missing '") + (block ? "%}" : "}}") + "'");
      const bool strip = src_.compare(pos_, 3, std::string("-") + close + "}") == 0;
      if (depth == 0 && (strip || src_.compare(pos_, 2, std::string(1, close) + "}") == 0)) {
        tokens_.push_back({block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "", line_, col_});
        advance_to(pos_ + (strip ? 3 : 2));
        return after_tag(strip, block);
      }
      inner_token(depth);
    }
  }

  bool after_tag(bool strip, bool trim_newline) {
    const std::size_t start = pos_;
    if (strip) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance_to(pos_ + 1);
    } else if (trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      advance_to(pos_ + 1);
    }
    return pos_ > start && src_[pos_ - 1] == '\n';
  }

  void inner_token(int& depth) {
    const int line = line_, col = col_;
    const char c = src_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t end = pos_;
      while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
      tokens_.push_back({Token::Type::kName, src_.substr(pos_, end - pos_), line, col});
      advance_to(end);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      number(line, col);
    } else if (c == '\'' || c == '"') {
      tokens_.push_back({Token::Type::kString, string_literal(line, col), line, col});
    } else {
      static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                         ">",  "(",  ")",  "[",  "]",  "{",  "}", ",", ".", ":", "|", "="};
      for (const char* op : kOps) {
        const std::string o(op);
        if (src_.compare(pos_, o.size(), o) != 0) continue;
        if (o == "(" || o == "[" || o == "{") ++depth;
        if ((o == ")" || o == "]" || o == "}") && depth > 0) --depth;
        tokens_.push_back({Token::Type::kOp, o, line, col});
        advance_to(pos_ + o.size());
        return;
      }
      template_error(line, col, std::string("unexpected character '") + c + "'");
    }
  }

  void number(int line, int col) {
    std::size_t end = pos_;
    auto digits = [&] {
      while (end < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
    };
    digits();
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      std::size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_float = true;
        end = e;
        digits();
      }
    }
    std::string text;
    for (std::size_t k = pos_; k < end; ++k)
      if (src_[k] != '_') text += src_[k];
    tokens_.push_back({is_float ? Token::Type::kFloat : Token::Type::kInt, text, line, col});
    advance_to(end);
  }

  // Decodes Python's escapes (jinja2 decodes string literals with "unicode-escape").
  std::string string_literal(int line, int col) {
    const char quote = src_[pos_];
    std::size_t k = pos_ + 1;
    std::string out;
    for (;;) {
      if (k >= src_.size()) template_error(line, col, "unterminated string literal");
      const char c = src_[k];
      if (c == quote) break;
      if (c != '\\' || k + 1 >= src_.size()) {
        out += c;
        ++k;
        continue;
      }
      const char e = src_[k + 1];
      k += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '0': out += '\0'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (k + len > src_.size()) template_error(line, col, "truncated \\" + std::string(1, e) + " escape");
          std::uint32_t cp = 0;
          for (std::size_t d = 0; d < len; ++d) {
            const char h = src_[k + d];
            if (!std::isxdigit(static_cast<unsigned char>(h)))
              template_error(line, col, "bad \\" + std::string(1, e) + " escape in string literal");
            cp = cp * 16 + static_cast<std::uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                          ? h - '0'
                                                          : std::tolower(static_cast<unsigned char>(h)) - 'a' + 10);
          }
          k += len;
          utf8_append(out, cp);
          break;
        }
        default:
          out += '\\';
          out += e;
      }
    }
    advance_to(k + 1);
    return out;
  }

  const std::string& src_;
  std::size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) {
  std::string src;
  src.reserve(source.size());
  for (std::size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r' && k + 1 < source.size() && source[k + 1] == '\n') continue;
    src += source[k];
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(src).run();
}

}  // namespace speculators::text::jinja
