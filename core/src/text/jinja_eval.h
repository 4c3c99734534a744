// The chat-template evaluator: renders a parsed template against variables, with jinja2's scoping
// (a for-loop iteration and a macro call are scopes, `if` is not; namespaces carry values out of
// loops), its undefined values and its loop variable. jinja_builtins.cpp supplies the filters,
// tests, methods and globals it dispatches to.
#pragma once

#include <stdexcept>
#include <string>

#include "text/jinja_ast.h"
#include "text/jinja_value.h"

namespace speculators::text::jinja {

// Renders `program` with `variables` (and the globals of make_globals()) visible at the top level.
std::string render(const Body& program, const Dict& variables);

// The builtins. They report misuse by throwing std::runtime_error; the evaluator adds the
// template line and column.
Value apply_filter(const std::string& name, const Value& target, Args& args);
bool apply_test(const std::string& name, const Value& target, Args& args);
Value call_method(const Value& target, const std::string& name, Args& args);
Dict make_globals();

// Python's operators (jinja_operators.cpp): arithmetic, `~`, comparisons and `in`; subscripts.
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value unary_op(const std::string& op, const Value& a);
Value get_attribute(const Value& target, const std::string& name);
Value get_item(const Value& target, const Value& key);
Value get_slice(const Value& target, const Value& start, const Value& stop, const Value& step);

// Iteration as Python's `for`: list items, dict keys, string characters; undefined is empty.
List iterate(const Value& v);
// The error that using an undefined value raises (jinja2.exceptions.UndefinedError).
[[noreturn]] void undefined_error(const Value& v);

}  // namespace speculators::text::jinja
