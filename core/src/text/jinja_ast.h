// The syntax tree of a parsed chat template: expressions and statements, each with the line and
// column it starts at so that evaluation errors can point into the template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_value.h"

namespace speculators::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
using Kwargs = std::vector<std::pair<std::string, ExprPtr>>;

struct Expr {
  enum class Kind {
    kLiteral,     // value
    kName,        // name
    kList,        // args; name "tuple" for a tuple
    kDict,        // args: key, value, key, value, ...
    kGetAttr,     // args[0].name
    kGetItem,     // args[0][args[1]]
    kSlice,       // args[0][args[1]:args[2]:args[3]], absent parts null
    kCall,        // args[0](args[1..], kwargs)
    kMethodCall,  // args[0].name(args[1..], kwargs)
    kFilter,      // args[0] | name(args[1..], kwargs)
    kTest,        // args[0] is [not] name(args[1..])
    kUnary,       // name in {"-", "+", "not"}
    kBinary,      // args[0] name args[1]: arithmetic and "~"
    kCompare,     // args[0] ops[0] args[1] ops[1] args[2] ...: a Python comparison chain
    kAnd,
    kOr,
    kCond,        // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string name;
  Value value;
  std::vector<ExprPtr> args;
  Kwargs kwargs;
  bool negated = false;
  std::vector<std::string> ops;  // kCompare: ==, !=, <, <=, >, >=, in, not in
  int depth = 1;  // of the subtree, bounded by the parser so that evaluation cannot exhaust the stack
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kBlock };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;                                // kText
  ExprPtr expr;                                    // kOutput, kSet value, kFor iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body); a null condition is else
  std::vector<std::string> targets;                // kFor loop variables, kSet/kSetBlock names, kMacro name
  std::string attribute;                           // kSet: `set targets[0].attribute = ...`
  ExprPtr condition;                               // kFor `if` filter
  Body body;                                       // kFor, kSetBlock, kMacro, kBlock
  Body else_body;                                  // kFor
  Kwargs params;                                   // kMacro parameters with defaults (null if none)
};

}  // namespace speculators::text::jinja
