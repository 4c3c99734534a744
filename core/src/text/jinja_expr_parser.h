// The expression half of the chat-template parser, with jinja2's operator precedence
// (jinja2/parser.py): conditional < or < and < not < comparisons and `in` < + - < ~ < * / // % <
// ** < unary - + < postfix (. [] ()) and then filters `|` and tests `is`. The statement parser
// (jinja_parser.cpp) builds on its token cursor.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "text/jinja_ast.h"
#include "text/jinja_lexer.h"

namespace speculators::text::jinja {

class ExprParser {
 public:
  explicit ExprParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

 protected:
  static constexpr int kMaxDepth = 200;  // nesting of blocks and parenthesised expressions
  using Type = Token::Type;

  const Token& peek(std::size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool at_op(const char* op) const { return peek().type == Type::kOp && peek().text == op; }
  bool at_name(const char* name) const { return peek().type == Type::kName && peek().text == name; }
  [[noreturn]] void error(const Token& t, const std::string& message) const {
    template_error(t.line, t.column, message);
  }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Type::kEof: return "end of template";
      case Type::kBlockEnd: return "'%}'";
      case Type::kVarEnd: return "'}}'";
      case Type::kText: return "template text";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!at_op(op)) error(peek(), std::string("expected '") + op + "', found " + describe(peek()));
    next();
  }
  std::string expect_name() {
    if (peek().type != Type::kName) error(peek(), "expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect(Type type, const char* what) {
    if (peek().type != type) error(peek(), std::string("expected ") + what + ", found " + describe(peek()));
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(ExprParser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.error(p_.peek(), "template nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    ExprParser& p_;
  };

  ExprPtr make(Expr::Kind kind, const Token& at, std::string name = {});
  ExprPtr make2(Expr::Kind kind, const Token& at, std::string name, ExprPtr a, ExprPtr b);
  // Records the depth of a finished node; long chains (a|f|f|..., 1+1+...) are deep trees too.
  ExprPtr seal(ExprPtr e);
  // An expression, or several separated by commas as a tuple (`set a = 1, 2`, `for x in a, b`).
  ExprPtr parse_tuple(bool with_condition);
  ExprPtr parse_expression();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_binary_level(int level);
  ExprPtr parse_math1() { return parse_binary_level(0); }
  ExprPtr parse_pow();
  ExprPtr parse_unary();
  ExprPtr parse_unary_operand();
  ExprPtr parse_primary();
  ExprPtr parse_collection(bool dict);
  void parse_call_args(Expr& call);
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node, const Token& at);
  ExprPtr parse_filters(ExprPtr node);
  // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses.
  bool takes_bare_argument() const;

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace speculators::text::jinja
