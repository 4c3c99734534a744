// The chat-template parser: tokens from jinja_lexer.h to the statement tree of jinja_ast.h.
#pragma once

#include <string>

#include "text/jinja_ast.h"

namespace speculators::text::jinja {

// Parses a whole template; throws speculators::Error("chat template line L, column C: ...").
Body parse(const std::string& source);

}  // namespace speculators::text::jinja
