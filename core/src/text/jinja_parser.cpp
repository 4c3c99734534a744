// Recursive-descent parser for the Jinja subset of chat templates, with jinja2's operator
// precedence (jinja2/parser.py): conditional < or < and < not < comparisons and `in` < + - < ~ <
// * / // % < ** < unary - + < postfix (. [] ()) and then filters `|` and tests `is`.
#include "text/jinja_parser.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "text/jinja_lexer.h"

namespace speculators::text::jinja {

namespace {

constexpr int kMaxDepth = 200;
constexpr int kMaxExprDepth = 400;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_template() {
    std::string end_tag;
    Body body = parse_body({}, end_tag);
    return body;
  }

 private:
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
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.error(p_.peek(), "template nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  static std::string names_of(const std::set<std::string>& ends) {
    std::string names;
    for (const auto& e : ends) names += (names.empty() ? "'" : " or '") + e + "'";
    return names;
  }

  // Parses statements until one of `ends` opens a block tag (left unconsumed after its name,
  // returned in end_tag) or, with no ends, until the end of the template.
  Body parse_body(const std::set<std::string>& ends, std::string& end_tag) {
    DepthGuard guard(*this);
    Body body;
    for (;;) {
      const Token& t = peek();
      if (t.type == Type::kEof) {
        if (!ends.empty()) error(t, "unexpected end of template, expected " + names_of(ends));
        return body;
      }
      if (t.type == Type::kText) {
        auto s = make_stmt(Stmt::Kind::kText, t);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.type == Type::kVarBegin) {
        auto s = make_stmt(Stmt::Kind::kOutput, next());
        s->expr = parse_expression();
        expect(Type::kVarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.type == Type::kBlockBegin) {
        const Token& tag = peek(1);
        if (tag.type == Type::kName && ends.count(tag.text)) {
          next();
          end_tag = next().text;
          return body;
        }
        if (tag.type == Type::kName && (tag.text.rfind("end", 0) == 0 || tag.text == "elif" || tag.text == "else"))
          error(tag, "unexpected '" + tag.text + "'" + (ends.empty() ? std::string() : ", expected " + names_of(ends)));
        next();
        body.push_back(parse_statement());
      } else {
        error(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr make_stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  StmtPtr parse_statement() {
    const Token& tag = peek();
    if (tag.type != Type::kName) error(tag, "expected a statement name, found " + describe(tag));
    const std::string name = tag.text;
    if (name == "if") return parse_if();
    if (name == "for") return parse_for();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(tag, "'" + name + "' outside a for loop");
      auto s = make_stmt(name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, next());
      expect(Type::kBlockEnd, "'%}'");
      return s;
    }
    if (name == "generation") {  // transformers' assistant-mask extension: renders its body
      auto s = make_stmt(Stmt::Kind::kBlock, next());
      expect(Type::kBlockEnd, "'%}'");
      std::string end;
      s->body = parse_body({"endgeneration"}, end);
      expect(Type::kBlockEnd, "'%}'");
      return s;
    }
    error(tag, "unknown or unsupported statement '" + name + "'");
  }

  StmtPtr parse_if() {
    auto s = make_stmt(Stmt::Kind::kIf, next());
    ExprPtr cond = parse_expression();
    for (;;) {
      expect(Type::kBlockEnd, "'%}'");
      std::string end;
      Body body = parse_body({"elif", "else", "endif"}, end);
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "endif") break;
      if (end == "else") {
        expect(Type::kBlockEnd, "'%}'");
        Body else_body = parse_body({"endif"}, end);
        s->branches.emplace_back(nullptr, std::move(else_body));
        break;
      }
      cond = parse_expression();
    }
    expect(Type::kBlockEnd, "'%}'");
    return s;
  }

  StmtPtr parse_for() {
    auto s = make_stmt(Stmt::Kind::kFor, next());
    s->targets.push_back(expect_name());
    while (at_op(",")) {
      next();
      s->targets.push_back(expect_name());
    }
    if (!at_name("in")) error(peek(), "expected 'in' in for loop, found " + describe(peek()));
    next();
    s->expr = parse_tuple(false);
    if (at_name("if")) {
      next();
      s->condition = parse_expression();
    }
    if (at_name("recursive")) error(peek(), "recursive for loops are not supported");
    expect(Type::kBlockEnd, "'%}'");
    ++loop_depth_;
    std::string end;
    s->body = parse_body({"else", "endfor"}, end);
    --loop_depth_;
    if (end == "else") {
      expect(Type::kBlockEnd, "'%}'");
      s->else_body = parse_body({"endfor"}, end);
    }
    expect(Type::kBlockEnd, "'%}'");
    return s;
  }

  StmtPtr parse_set() {
    auto s = make_stmt(Stmt::Kind::kSet, next());
    s->targets.push_back(expect_name());
    if (at_op(".")) {
      next();
      s->attribute = expect_name();
    } else {
      while (at_op(",")) {
        next();
        s->targets.push_back(expect_name());
      }
    }
    if (peek().type == Type::kBlockEnd && s->attribute.empty() && s->targets.size() == 1) {
      next();
      s->kind = Stmt::Kind::kSetBlock;
      std::string end;
      s->body = parse_body({"endset"}, end);
      expect(Type::kBlockEnd, "'%}'");
      return s;
    }
    expect_op("=");
    s->expr = parse_tuple(true);
    expect(Type::kBlockEnd, "'%}'");
    return s;
  }

  StmtPtr parse_macro() {
    auto s = make_stmt(Stmt::Kind::kMacro, next());
    s->targets.push_back(expect_name());
    expect_op("(");
    while (!at_op(")")) {
      std::string param = expect_name();
      ExprPtr def;
      if (at_op("=")) {
        next();
        def = parse_expression();
      }
      s->params.emplace_back(std::move(param), std::move(def));
      if (!at_op(",")) break;
      next();
    }
    expect_op(")");
    expect(Type::kBlockEnd, "'%}'");
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    std::string end;
    s->body = parse_body({"endmacro"}, end);
    loop_depth_ = saved_loops;
    if (peek().type == Type::kName) next();  // `{% endmacro name %}`
    expect(Type::kBlockEnd, "'%}'");
    return s;
  }

  ExprPtr make(Expr::Kind kind, const Token& at, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    e->name = std::move(name);
    return e;
  }
  ExprPtr make2(Expr::Kind kind, const Token& at, std::string name, ExprPtr a, ExprPtr b) {
    auto e = make(kind, at, std::move(name));
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  // Records the depth of a finished node; long chains (a|f|f|..., 1+1+...) are deep trees too.
  ExprPtr seal(ExprPtr e) {
    int depth = 0;
    for (const auto& a : e->args)
      if (a) depth = std::max(depth, a->depth);
    for (const auto& kv : e->kwargs) depth = std::max(depth, kv.second->depth);
    e->depth = depth + 1;
    if (e->depth > kMaxExprDepth) template_error(e->line, e->column, "expression nested too deeply");
    return e;
  }

  // An expression, or several separated by commas as a tuple (`set a = 1, 2`, `for x in a, b`).
  ExprPtr parse_tuple(bool with_condition) {
    const Token& start = peek();
    ExprPtr first = with_condition ? parse_expression() : parse_or();
    if (!at_op(",")) return first;
    auto list = make(Expr::Kind::kList, start, "tuple");
    list->args.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (at_op(")") || peek().type == Type::kBlockEnd || peek().type == Type::kVarEnd) break;  // (1,)
      list->args.push_back(with_condition ? parse_expression() : parse_or());
    }
    return seal(std::move(list));
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    ExprPtr value = parse_or();
    while (at_name("if")) {
      const Token& t = next();
      auto e = make(Expr::Kind::kCond, t);
      e->args.push_back(std::move(value));
      e->args.push_back(parse_or());
      if (at_name("else")) {
        next();
        e->args.push_back(parse_expression());
      } else {
        e->args.push_back(nullptr);
      }
      value = seal(std::move(e));
    }
    return value;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      const Token& t = next();
      left = make2(Expr::Kind::kOr, t, "or", std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      const Token& t = next();
      left = make2(Expr::Kind::kAnd, t, "and", std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      DepthGuard guard(*this);
      const Token& t = next();
      auto e = make(Expr::Kind::kUnary, t, "not");
      e->args.push_back(parse_not());
      return seal(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr left = parse_math1();
    ExprPtr chain;
    for (;;) {
      const Token& t = peek();
      std::string op;
      if (t.type == Type::kOp && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
                                  t.text == ">" || t.text == ">=")) {
        op = t.text;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && peek(1).type == Type::kName && peek(1).text == "in") {
        op = "not in";
        next();
        next();
      } else {
        return chain ? seal(std::move(chain)) : std::move(left);
      }
      if (!chain) {
        chain = make(Expr::Kind::kCompare, t);
        chain->args.push_back(std::move(left));
      }
      chain->ops.push_back(op);
      chain->args.push_back(parse_math1());
    }
  }

  ExprPtr parse_binary_level(int level) {
    static const std::vector<std::vector<std::string>> kLevels = {{"+", "-"}, {"~"}, {"*", "/", "//", "%"}};
    if (level == 3) return parse_pow();
    ExprPtr left = parse_binary_level(level + 1);
    for (;;) {
      const Token& t = peek();
      bool match = false;
      for (const auto& op : kLevels[static_cast<std::size_t>(level)]) match = match || (t.type == Type::kOp && t.text == op);
      if (!match) return left;
      next();
      left = make2(Expr::Kind::kBinary, t, t.text, std::move(left), parse_binary_level(level + 1));
    }
  }
  ExprPtr parse_math1() { return parse_binary_level(0); }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary();
    while (at_op("**")) {
      const Token& t = next();
      left = make2(Expr::Kind::kBinary, t, "**", std::move(left), parse_unary());
    }
    return left;
  }

  ExprPtr parse_unary() {
    DepthGuard guard(*this);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      const Token& t = next();
      node = make(Expr::Kind::kUnary, t, t.text);
      node->args.push_back(parse_unary_operand());
      node = seal(std::move(node));
    } else {
      node = parse_postfix(parse_primary());
    }
    return parse_filters(std::move(node));
  }
  ExprPtr parse_unary_operand() {
    DepthGuard guard(*this);
    if (at_op("-") || at_op("+")) {
      const Token& t = next();
      auto node = make(Expr::Kind::kUnary, t, t.text);
      node->args.push_back(parse_unary_operand());
      return seal(std::move(node));
    }
    return parse_postfix(parse_primary());
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case Type::kName: {
        next();
        auto e = make(Expr::Kind::kLiteral, t);
        if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->value = Value::none();
        else e = make(Expr::Kind::kName, t, t.text);
        return e;
      }
      case Type::kString: {
        std::string s = next().text;
        while (peek().type == Type::kString) s += next().text;
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = Value::string(std::move(s));
        return e;
      }
      case Type::kInt:
      case Type::kFloat: {
        next();
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = t.type == Type::kInt ? Value::integer(std::strtoll(t.text.c_str(), nullptr, 10))
                                        : Value::real(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case Type::kOp:
        if (t.text == "(") {
          next();
          if (at_op(")")) {
            next();
            return make(Expr::Kind::kList, t, "tuple");
          }
          ExprPtr inner = parse_tuple(true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[" || t.text == "{") return parse_collection(t.text == "{");
        break;
      default: break;
    }
    error(t, "unexpected " + describe(t) + " in expression");
  }

  ExprPtr parse_collection(bool dict) {
    const Token& open = next();
    auto e = make(dict ? Expr::Kind::kDict : Expr::Kind::kList, open);
    const char* close = dict ? "}" : "]";
    while (!at_op(close)) {
      e->args.push_back(parse_expression());
      if (dict) {
        expect_op(":");
        e->args.push_back(parse_expression());
      }
      if (!at_op(",")) break;
      next();
    }
    expect_op(close);
    return seal(std::move(e));
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    while (!at_op(")")) {
      if (peek().type == Type::kName && peek(1).type == Type::kOp && peek(1).text == "=") {
        std::string key = next().text;
        next();
        call.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        if (!call.kwargs.empty()) error(peek(), "positional argument after a keyword argument");
        call.args.push_back(parse_expression());
      }
      if (!at_op(",")) break;
      next();
    }
    expect_op(")");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      const Token& t = peek();
      if (at_op(".")) {
        next();
        const Token& attr = peek();
        std::string name;
        if (attr.type == Type::kName || attr.type == Type::kInt) name = next().text;
        else error(attr, "expected an attribute name after '.', found " + describe(attr));
        if (at_op("(")) {
          auto call = make(Expr::Kind::kMethodCall, attr, name);
          call->args.push_back(std::move(node));
          parse_call_args(*call);
          node = seal(std::move(call));
        } else {
          auto get = make(Expr::Kind::kGetAttr, attr, name);
          get->args.push_back(std::move(node));
          node = seal(std::move(get));
        }
      } else if (at_op("[")) {
        next();
        node = parse_subscript(std::move(node), t);
      } else if (at_op("(")) {
        auto call = make(Expr::Kind::kCall, t);
        call->line = node->line;  // errors of a call point at its callee
        call->column = node->column;
        call->args.push_back(std::move(node));
        parse_call_args(*call);
        node = seal(std::move(call));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node, const Token& at) {
    ExprPtr parts[3];
    int part = 0;
    bool slice = false;
    while (!at_op("]")) {
      if (at_op(":")) {
        next();
        slice = true;
        if (++part > 2) error(peek(), "too many ':' in a slice");
        continue;
      }
      if (parts[part]) error(peek(), "expected ':' or ']', found " + describe(peek()));
      parts[part] = parse_expression();
    }
    expect_op("]");
    if (!slice) {
      if (!parts[0]) error(at, "empty subscript");
      return make2(Expr::Kind::kGetItem, at, "", std::move(node), std::move(parts[0]));
    }
    auto e = make(Expr::Kind::kSlice, at);
    e->args.push_back(std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return seal(std::move(e));
  }

  ExprPtr parse_filters(ExprPtr node) {
    for (;;) {
      if (at_op("|")) {
        next();
        const Token& t = peek();
        auto f = make(Expr::Kind::kFilter, t, expect_name());
        f->args.push_back(std::move(node));
        if (at_op("(")) parse_call_args(*f);
        node = seal(std::move(f));
      } else if (at_name("is")) {
        next();
        bool negated = false;
        if (at_name("not")) {
          next();
          negated = true;
        }
        const Token& t = peek();
        auto test = make(Expr::Kind::kTest, t, expect_name());
        test->negated = negated;
        test->args.push_back(std::move(node));
        if (at_op("(")) {
          parse_call_args(*test);
        } else if (takes_bare_argument()) {
          test->args.push_back(parse_postfix(parse_primary()));
        }
        node = seal(std::move(test));
      } else {
        return node;
      }
    }
  }

  // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses.
  bool takes_bare_argument() const {
    const Token& t = peek();
    if (t.type == Type::kString || t.type == Type::kInt || t.type == Type::kFloat) return true;
    if (t.type == Type::kOp) return t.text == "[" || t.text == "{";
    if (t.type != Type::kName) return false;
    static const std::set<std::string> kStop = {"else", "or", "and", "if", "in", "is", "not", "recursive"};
    return !kStop.count(t.text);
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::string& source) { return Parser(lex(source)).parse_template(); }

}  // namespace speculators::text::jinja
