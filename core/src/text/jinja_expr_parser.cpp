// Expression parsing for chat templates: literals, names, collections, postfix access and calls,
// filters, tests and the operator levels, each finished node sealed with its depth.
#include "text/jinja_expr_parser.h"

#include <algorithm>
#include <cstdlib>
#include <set>

namespace speculators::text::jinja {

namespace {
constexpr int kMaxExprDepth = 400;
}  // namespace

ExprPtr ExprParser::make(Expr::Kind kind, const Token& at, std::string name) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = at.line;
  e->column = at.column;
  e->name = std::move(name);
  return e;
}

ExprPtr ExprParser::make2(Expr::Kind kind, const Token& at, std::string name, ExprPtr a, ExprPtr b) {
  auto e = make(kind, at, std::move(name));
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return seal(std::move(e));
}

// Records the depth of a finished node; long chains (a|f|f|..., 1+1+...) are deep trees too.
ExprPtr ExprParser::seal(ExprPtr e) {
  int depth = 0;
  for (const auto& a : e->args)
    if (a) depth = std::max(depth, a->depth);
  for (const auto& kv : e->kwargs) depth = std::max(depth, kv.second->depth);
  e->depth = depth + 1;
  if (e->depth > kMaxExprDepth) template_error(e->line, e->column, "expression nested too deeply");
  return e;
}

// An expression, or several separated by commas as a tuple (`set a = 1, 2`, `for x in a, b`).
ExprPtr ExprParser::parse_tuple(bool with_condition) {
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

ExprPtr ExprParser::parse_expression() {
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

ExprPtr ExprParser::parse_or() {
  ExprPtr left = parse_and();
  while (at_name("or")) {
    const Token& t = next();
    left = make2(Expr::Kind::kOr, t, "or", std::move(left), parse_and());
  }
  return left;
}

ExprPtr ExprParser::parse_and() {
  ExprPtr left = parse_not();
  while (at_name("and")) {
    const Token& t = next();
    left = make2(Expr::Kind::kAnd, t, "and", std::move(left), parse_not());
  }
  return left;
}

ExprPtr ExprParser::parse_not() {
  if (at_name("not")) {
    DepthGuard guard(*this);
    const Token& t = next();
    auto e = make(Expr::Kind::kUnary, t, "not");
    e->args.push_back(parse_not());
    return seal(std::move(e));
  }
  return parse_compare();
}

ExprPtr ExprParser::parse_compare() {
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

ExprPtr ExprParser::parse_binary_level(int level) {
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

ExprPtr ExprParser::parse_pow() {
  ExprPtr left = parse_unary();
  while (at_op("**")) {
    const Token& t = next();
    left = make2(Expr::Kind::kBinary, t, "**", std::move(left), parse_unary());
  }
  return left;
}

ExprPtr ExprParser::parse_unary() {
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

ExprPtr ExprParser::parse_unary_operand() {
  DepthGuard guard(*this);
  if (at_op("-") || at_op("+")) {
    const Token& t = next();
    auto node = make(Expr::Kind::kUnary, t, t.text);
    node->args.push_back(parse_unary_operand());
    return seal(std::move(node));
  }
  return parse_postfix(parse_primary());
}

ExprPtr ExprParser::parse_primary() {
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

ExprPtr ExprParser::parse_collection(bool dict) {
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

void ExprParser::parse_call_args(Expr& call) {
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

ExprPtr ExprParser::parse_postfix(ExprPtr node) {
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

ExprPtr ExprParser::parse_subscript(ExprPtr node, const Token& at) {
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

ExprPtr ExprParser::parse_filters(ExprPtr node) {
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
bool ExprParser::takes_bare_argument() const {
  const Token& t = peek();
  if (t.type == Type::kString || t.type == Type::kInt || t.type == Type::kFloat) return true;
  if (t.type == Type::kOp) return t.text == "[" || t.text == "{";
  if (t.type != Type::kName) return false;
  static const std::set<std::string> kStop = {"else", "or", "and", "if", "in", "is", "not", "recursive"};
  return !kStop.count(t.text);
}

}  // namespace speculators::text::jinja
