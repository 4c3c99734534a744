// Errors of chat templates: syntax and evaluation errors name the template line and column
// (1-based, in code points), raise_exception() carries the template's message, hostile input
// (deep nesting, runaway recursion) fails cleanly, and load_chat_template names the file and key
// at fault.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "speculators/error.h"
#include "speculators/text/chat_template.h"

using speculators::ChatTemplate;
using Catch::Contains;

namespace {

std::string render(const std::string& source, nlohmann::ordered_json vars = nlohmann::ordered_json::object()) {
  speculators::ChatRenderOptions options;
  options.variables = std::move(vars);
  return ChatTemplate(source).render(nlohmann::ordered_json::array(), options);
}

std::string error_of(const std::string& source) {
  try {
    render(source);
  } catch (const speculators::Error& e) {
    CHECK(e.code() == speculators::ExitCode::kUsage);
    return e.what();
  }
  FAIL("no error from: " << source);
  return "";
}

}  // namespace

TEST_CASE("chat template syntax errors name line and column", "[text][chat_template]") {
  CHECK(error_of("a\n{{ x ") == "chat template line 2, column 1: unclosed tag: missing '}}'");
  CHECK(error_of("x\n\n  {% frobnicate %}") == "chat template line 3, column 6: unknown or unsupported statement 'frobnicate'");
  CHECK(error_of("{{ 1 + }}") == "chat template line 1, column 8: unexpected '}}' in expression");
  CHECK(error_of("é{{ 1 + }}") == "chat template line 1, column 9: unexpected '}}' in expression");
  CHECK_THAT(error_of("{% if x %}\na"), Contains("line 2, column 2: unexpected end of template, expected 'elif' or 'else' or 'endif'"));
  CHECK_THAT(error_of("{% for x in y %}{% endif %}"), Contains("line 1, column 20: unexpected 'endif', expected 'else' or 'endfor'"));
  CHECK_THAT(error_of("a{% endfor %}"), Contains("line 1, column 5: unexpected 'endfor'"));
  CHECK_THAT(error_of("{% break %}"), Contains("line 1, column 4: 'break' outside a for loop"));
  CHECK_THAT(error_of("{{ 'abc }}"), Contains("line 1, column 4: unterminated string literal"));
  CHECK_THAT(error_of("a {# never closed"), Contains("line 1, column 3: unclosed comment"));
  CHECK_THAT(error_of("{{ x $ y }}"), Contains("line 1, column 6: unexpected character '$'"));
  CHECK_THAT(error_of("{% set x %}a"), Contains("expected 'endset'"));
  CHECK_THAT(error_of("{{ f(a=1, 2) }}"), Contains("positional argument after a keyword argument"));
  CHECK_THAT(error_of("{% for x in y recursive %}{% endfor %}"), Contains("recursive for loops are not supported"));
  CHECK_THAT(error_of("{% include 'other.jinja' %}"), Contains("unknown or unsupported statement 'include'"));
}

TEST_CASE("chat template evaluation errors name line and column", "[text][chat_template]") {
  CHECK(error_of("hello\n {{ raise_exception('boom') }}") == "chat template line 2, column 5: raise_exception: boom");
  CHECK(error_of("{{ a.b }}") == "chat template line 1, column 6: 'a' is undefined");
  CHECK(error_of("{{ m.x.y }}") == "chat template line 1, column 6: 'm' is undefined");
  CHECK_THAT(error_of("{{ x | nofilter }}"), Contains("line 1, column 8: no filter named 'nofilter'"));
  CHECK_THAT(error_of("{{ x is nottest }}"), Contains("no test named 'nottest'"));
  CHECK_THAT(error_of("{{ 1 + 'a' }}"), Contains("unsupported operand type(s) for +: 'int' and 'str'"));
  CHECK_THAT(error_of("{{ 1 // 0 }}"), Contains("integer division or modulo by zero"));
  CHECK_THAT(error_of("{{ 1 < 'a' }}"), Contains("'<' not supported between instances of 'int' and 'str'"));
  CHECK_THAT(error_of("{% set x = 1 %}{% set x.a = 2 %}"), Contains("cannot assign attribute 'a' on 'x'"));
  CHECK_THAT(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), Contains("takes not more than 1 argument(s)"));
  CHECK_THAT(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}"), Contains("takes no keyword argument 'b'"));
  CHECK_THAT(error_of("{{ 'abc'.nomethod() }}"), Contains("'str' object has no method 'nomethod'"));
  CHECK_THAT(error_of("{{ 3() }}"), Contains("'int' object is not callable"));
  CHECK_THAT(error_of("{% for x in 3 %}{% endfor %}"), Contains("'int' object is not iterable"));
  CHECK_THAT(error_of("{{ [1].append(2) }}"), Contains("'append' is not allowed"));
  CHECK_THAT(error_of("{{ undefined_var | tojson }}"), Contains("'undefined_var' is undefined"));
  CHECK_THAT(error_of("{% for a, b in [[1, 2, 3]] %}{% endfor %}"), Contains("cannot unpack 3 values into 2 names"));
}

TEST_CASE("chat templates fail cleanly on hostile input", "[text][chat_template]") {
  CHECK_THAT(error_of(std::string("{{ ") + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
             Contains("nested too deeply"));
  CHECK_THAT(error_of(std::string(3000, '-') + "{{ " + std::string(3000, '-') + "1 }}"), Contains("nested too deeply"));
  std::string ifs;
  for (int k = 0; k < 1000; ++k) ifs += "{% if true %}";
  CHECK_THAT(error_of(ifs), Contains("nested too deeply"));
  CHECK_THAT(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), Contains("macro calls nested too deeply"));
  CHECK_THAT(error_of("{{ range(1000000) | length }}"), Contains("range too large"));
  CHECK_THAT(error_of("{{ 2 ** 10000000000 }}"), Contains("integer overflow in **"));
  CHECK_THAT(error_of("{{ 9223372036854775807 + 1 }}"), Contains("integer overflow in +"));
  CHECK_THAT(error_of("{{ (-9223372036854775807 - 1) // -1 }}"), Contains("integer overflow in //"));
  CHECK_THAT(error_of("{{ 'ab' * 10000000000 }}"), Contains("repetition too large"));
  CHECK_THAT(error_of("{{ 4 is divisibleby 0 }}"), Contains("modulo by zero"));
  std::string chain = "{{ 'x'";
  for (int k = 0; k < 100000; ++k) chain += "|trim";
  CHECK_THAT(error_of(chain + " }}"), Contains("expression nested too deeply"));
  std::string sum = "{{ 1";
  for (int k = 0; k < 100000; ++k) sum += "+1";
  CHECK_THAT(error_of(sum + " }}"), Contains("expression nested too deeply"));
  CHECK_THAT(error_of("{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}"),
             Contains("line 1, column 30: more than 2000000 loop iterations"));
}

TEST_CASE("chat template render options", "[text][chat_template]") {
  const ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}"
      "{% if add_generation_prompt %}>{% endif %}{{ tools is none }}{{ documents is none }}{{ eos_token }}{{ extra }}");
  speculators::ChatRenderOptions options;
  options.add_generation_prompt = true;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.variables = {{"extra", "!"}};
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}, {"content": "yo", "role": "bot"}])");
  CHECK(t.render(messages, options) == "<s>user:hi;bot:yo;>TrueTrue</s>!");
  CHECK(t.render(nlohmann::json::parse(R"([{"role": "user", "content": "hi"}])")) == "user:hi;TrueTrue");
  CHECK_THROWS_WITH(t.render(nlohmann::ordered_json::object()), Contains("messages must be a JSON array"));
  // Key order of a message is kept, as in Python.
  CHECK(ChatTemplate("{{ messages[0] | tojson }}").render(messages) == R"({"role": "user", "content": "hi"})");
  CHECK(ChatTemplate("{{ messages[1] | tojson }}").render(messages) == R"({"content": "yo", "role": "bot"})");
}

TEST_CASE("load_chat_template names the file and key at fault", "[text][chat_template]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(SPECULATORS_TEST_BINARY_DIR) / "tests" / "chat_template_loader";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; };
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()), Contains("no chat template"));

  write("tokenizer_config.json", R"({"chat_template": "{{ bos_token }}x", "bos_token": {"content": "<b>"}, "eos_token": null})");
  auto model = speculators::load_chat_template(dir.string());
  CHECK(model.bos_token == "<b>");
  CHECK(model.eos_token.empty());
  CHECK(model.render(nlohmann::ordered_json::array()) == "<b>x");

  write("chat_template.jinja", "from file {{ eos_token }}\n");
  write("tokenizer_config.json", R"({"chat_template": "ignored", "eos_token": "<e>"})");
  CHECK(speculators::load_chat_template(dir.string()).render(nlohmann::ordered_json::array()) == "from file <e>");
  fs::remove(dir / "chat_template.jinja");

  write("tokenizer_config.json", R"({"chat_template": "x", "bos_token": 5})");
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()),
                    Contains("tokenizer_config.json: \"bos_token\" must be a string or an object"));
  write("tokenizer_config.json", R"({"chat_template": 7})");
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()), Contains("\"chat_template\" must be a string or a list"));
  write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "t"}]})");
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()), Contains("no chat template named 'default' (have: tool_use)"));
  CHECK(speculators::load_chat_template(dir.string(), "tool_use").render(nlohmann::ordered_json::array()) == "t");
  write("tokenizer_config.json", "{not json");
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()), Contains("tokenizer_config.json: not valid JSON"));
  write("tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  CHECK_THROWS_WITH(speculators::load_chat_template(dir.string()), Contains("chat template line 1, column 7"));
}
