// Recursive-descent parser for the statements of chat templates (text, output, if, for, set,
// macro, break/continue, generation), on the expression parser of jinja_expr_parser.h.
#include "text/jinja_parser.h"

#include <set>

#include "text/jinja_expr_parser.h"
#include "text/jinja_lexer.h"

namespace speculators::text::jinja {

namespace {

class Parser : public ExprParser {
 public:
  using ExprParser::ExprParser;

  Body parse_template() {
    std::string end_tag;
    Body body = parse_body({}, end_tag);
    return body;
  }

 private:
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

  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::string& source) { return Parser(lex(source)).parse_template(); }

}  // namespace speculators::text::jinja
