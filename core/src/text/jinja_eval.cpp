// Evaluation of the statement tree: scopes, output, if/for/set/macro, the loop variable, and the
// dispatch of expressions to operators and builtins, with every error raised as a
// speculators::Error naming the template line and column.
#include "text/jinja_eval.h"

#include <memory>
#include <unordered_map>

#include "speculators/error.h"
#include "text/jinja_lexer.h"

namespace speculators::text::jinja {

namespace {

using Scope = std::unordered_map<std::string, Value>;
constexpr int kMaxCallDepth = 100;
// Bounds a runaway template (nested loops over large ranges); real chat templates loop over
// messages and tools, far below this.
constexpr std::int64_t kMaxLoopIterations = 2'000'000;

class Evaluator {
 public:
  explicit Evaluator(const Dict& variables) {
    auto root = std::make_shared<Scope>();
    for (auto& [k, v] : make_globals()) (*root)[k] = v;
    for (const auto& [k, v] : variables) (*root)[k] = v;
    scopes_.push_back(root);
  }

  std::string run(const Body& program) {
    std::string out;
    out_ = &out;
    exec(program);
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const Body& body) {
    for (const auto& s : body) {
      const Flow f = exec(*s);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::kText: *out_ += s.text; break;
      case Stmt::Kind::kOutput: *out_ += to_str(eval(*s.expr)); break;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (!cond || truthy(eval(*cond))) return exec(body);
        break;
      case Stmt::Kind::kFor: exec_for(s); break;
      case Stmt::Kind::kSet: exec_set(s); break;
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        std::string* saved = out_;
        out_ = &captured;
        exec(s.body);
        out_ = saved;
        (*scopes_.back())[s.targets[0]] = Value::string(captured);
        break;
      }
      case Stmt::Kind::kMacro: (*scopes_.back())[s.targets[0]] = make_macro(s); break;
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
      case Stmt::Kind::kBlock: return exec(s.body);
    }
    return Flow::kNormal;
  }

  void bind(Scope& scope, const std::vector<std::string>& targets, const Value& v, const Stmt& at) {
    if (targets.size() == 1) {
      scope[targets[0]] = v;
      return;
    }
    List items;
    try {
      items = iterate(v);
    } catch (const std::exception& e) {
      template_error(at.line, at.column, std::string("cannot unpack: ") + e.what());
    }
    if (items.size() != targets.size())
      template_error(at.line, at.column, "cannot unpack " + std::to_string(items.size()) + " values into " +
                                             std::to_string(targets.size()) + " names");
    for (std::size_t k = 0; k < targets.size(); ++k) scope[targets[k]] = items[k];
  }

  void exec_set(const Stmt& s) {
    const Value v = eval(*s.expr);
    if (s.attribute.empty()) {
      bind(*scopes_.back(), s.targets, v, s);
      return;
    }
    const Value ns = lookup(s.targets[0]);
    if (ns.kind != Value::Kind::kNamespace)
      template_error(s.line, s.column, "cannot assign attribute '" + s.attribute + "' on '" + s.targets[0] +
                                           "', a " + type_name(ns) + " and not a namespace()");
    for (auto& [k, x] : *ns.dict) {
      if (k == s.attribute) {
        x = v;
        return;
      }
    }
    ns.dict->emplace_back(s.attribute, v);
  }

  void exec_for(const Stmt& s) {
    List all;
    try {
      all = iterate(eval(*s.expr));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      template_error(s.expr->line, s.expr->column, e.what());
    }
    List items;
    if (s.condition) {
      for (const Value& item : all) {
        scopes_.push_back(std::make_shared<Scope>());
        bind(*scopes_.back(), s.targets, item, s);
        const bool keep = truthy(eval(*s.condition));
        scopes_.pop_back();
        if (keep) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    // As jinja2 compiles it, `else` runs unless some iteration reached the end of the body: an
    // empty sequence, but also a break or continue in every iteration that ran.
    bool completed = false;
    const auto n = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < n; ++k) {
      if (++iterations_ > kMaxLoopIterations)
        template_error(s.line, s.column, "more than " + std::to_string(kMaxLoopIterations) + " loop iterations");
      auto scope = std::make_shared<Scope>();
      bind(*scope, s.targets, items[static_cast<std::size_t>(k)], s);
      (*scope)["loop"] = loop_value(items, k);
      scopes_.push_back(scope);
      const Flow f = exec(s.body);
      scopes_.pop_back();
      completed = completed || f == Flow::kNormal;
      if (f == Flow::kBreak) break;
    }
    if (!completed) exec(s.else_body);
  }

  static Value loop_value(const List& items, std::int64_t k) {
    const auto n = static_cast<std::int64_t>(items.size());
    const auto at = [&](std::int64_t j) {
      return j >= 0 && j < n ? items[static_cast<std::size_t>(j)] : Value::undefined("there is no such item");
    };
    Dict loop = {{"index", Value::integer(k + 1)},
                 {"index0", Value::integer(k)},
                 {"revindex", Value::integer(n - k)},
                 {"revindex0", Value::integer(n - k - 1)},
                 {"first", Value::boolean(k == 0)},
                 {"last", Value::boolean(k == n - 1)},
                 {"length", Value::integer(n)},
                 {"depth", Value::integer(1)},
                 {"depth0", Value::integer(0)},
                 {"previtem", at(k - 1)},
                 {"nextitem", at(k + 1)}};
    loop.emplace_back("cycle", Value::callable([k](Args& args) {
                        if (args.positional.empty()) throw std::runtime_error("no items for cycling given");
                        return args.positional[static_cast<std::size_t>(k) % args.positional.size()];
                      }));
    return Value::make_dict(std::move(loop));
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::callable([this, macro](Args& args) { return call_macro(*macro, args); });
  }

  Value call_macro(const Stmt& m, Args& args) {
    if (args.positional.size() > m.params.size())
      throw std::runtime_error("macro '" + m.targets[0] + "' takes not more than " + std::to_string(m.params.size()) +
                               " argument(s)");
    if (++call_depth_ > kMaxCallDepth) {
      --call_depth_;
      throw std::runtime_error("macro calls nested too deeply");
    }
    auto scope = std::make_shared<Scope>();
    std::vector<std::shared_ptr<Scope>> saved = {scopes_.front(), scope};
    saved.swap(scopes_);
    for (const auto& [name, value] : args.keyword) {
      bool known = false;
      for (const auto& p : m.params) known = known || p.first == name;
      if (!known) throw std::runtime_error("macro '" + m.targets[0] + "' takes no keyword argument '" + name + "'");
    }
    for (std::size_t k = 0; k < m.params.size(); ++k) {
      Value v = args.get(k, m.params[k].first);
      if (v.is_undefined() && m.params[k].second) v = eval(*m.params[k].second);
      if (v.is_undefined()) v = Value::undefined("'" + m.params[k].first + "' is undefined");
      (*scope)[m.params[k].first] = v;
    }
    std::string out;
    std::string* saved_out = out_;
    out_ = &out;
    struct Restore {
      Evaluator& e;
      std::vector<std::shared_ptr<Scope>>& scopes;
      std::string* out;
      ~Restore() {
        e.scopes_.swap(scopes);
        e.out_ = out;
        --e.call_depth_;
      }
    } restore{*this, saved, saved_out};
    exec(m.body);
    return Value::string(out);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto found = (*it)->find(name);
      if (found != (*it)->end()) return found->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Args eval_args(const Expr& e, std::size_t first) {
    Args args;
    for (std::size_t k = first; k < e.args.size(); ++k) args.positional.push_back(eval(*e.args[k]));
    for (const auto& [name, value] : e.kwargs) args.keyword.emplace_back(name, eval(*value));
    return args;
  }

  Value eval(const Expr& e) {
    try {
      return eval_unchecked(e);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& ex) {
      template_error(e.line, e.column, ex.what());
    }
  }

  Value eval_unchecked(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kList: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return e.name == "tuple" ? Value::make_tuple(std::move(items)) : Value::make_list(std::move(items));
      }
      case Expr::Kind::kDict: {
        Dict entries;
        for (std::size_t k = 0; k + 1 < e.args.size(); k += 2) {
          std::string key = to_str(eval(*e.args[k]));
          Value v = eval(*e.args[k + 1]);
          bool replaced = false;
          for (auto& [ek, ev] : entries)
            if (ek == key) ev = v, replaced = true;
          if (!replaced) entries.emplace_back(std::move(key), std::move(v));
        }
        return Value::make_dict(std::move(entries));
      }
      case Expr::Kind::kGetAttr: return get_attribute(eval(*e.args[0]), e.name);
      case Expr::Kind::kGetItem: return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::kSlice: {
        auto part = [&](std::size_t k) { return e.args[k] ? eval(*e.args[k]) : Value::none(); };
        return get_slice(eval(*e.args[0]), part(1), part(2), part(3));
      }
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.args[0]);
        if (callee.is_undefined()) undefined_error(callee);
        if (callee.kind != Value::Kind::kCallable) throw std::runtime_error("'" + type_name(callee) + "' object is not callable");
        Args args = eval_args(e, 1);
        return (*callee.fn)(args);
      }
      case Expr::Kind::kMethodCall: {
        const Value target = eval(*e.args[0]);
        Args args = eval_args(e, 1);
        if (const Value* member = target.find(e.name); member && member->kind == Value::Kind::kCallable)
          return (*member->fn)(args);
        return call_method(target, e.name, args);
      }
      case Expr::Kind::kFilter: {
        const Value target = eval(*e.args[0]);
        Args args = eval_args(e, 1);
        return apply_filter(e.name, target, args);
      }
      case Expr::Kind::kTest: {
        const Value target = eval(*e.args[0]);
        Args args = eval_args(e, 1);
        return Value::boolean(apply_test(e.name, target, args) != e.negated);
      }
      case Expr::Kind::kUnary: return unary_op(e.name, eval(*e.args[0]));
      case Expr::Kind::kBinary: return binary_op(e.name, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::kCompare: {  // a < b < c is (a < b) and (b < c), b evaluated once
        Value left = eval(*e.args[0]);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!truthy(binary_op(e.ops[k], left, right))) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::kAnd: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? eval(*e.args[1]) : left;
      }
      case Expr::Kind::kOr: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? left : eval(*e.args[1]);
      }
      case Expr::Kind::kCond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the inline if-expression evaluated to false");
    }
    return Value::undefined();
  }

  std::vector<std::shared_ptr<Scope>> scopes_;
  std::string* out_ = nullptr;
  int call_depth_ = 0;
  std::int64_t iterations_ = 0;
};

}  // namespace

std::string render(const Body& program, const Dict& variables) { return Evaluator(variables).run(program); }

}  // namespace speculators::text::jinja
