// The chat-template lexer: splits Jinja source into text and the tokens inside {{ }}, {% %}
// (comments {# #} are dropped), applying whitespace control (`-`, `+`) and the environment that
// transformers compiles chat templates with: trim_blocks and lstrip_blocks on, one trailing
// newline of the source dropped.
#pragma once

#include <string>
#include <vector>

namespace speculators::text::jinja {

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string text;  // text data, name, decoded string literal, number or operator
  int line;
  int column;
};

// Throws speculators::Error("chat template line L, column C: ...") on a malformed tag.
std::vector<Token> lex(const std::string& source);

// "chat template line L, column C: message", the form of every template error.
[[noreturn]] void template_error(int line, int column, const std::string& message);

}  // namespace speculators::text::jinja
