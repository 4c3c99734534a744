// Chat templates in the style of the Llama-3.1, Qwen2.5, Qwen3, Mistral and gpt-oss families
// (tests/core/text/chat_templates/), rendered over many conversations and compared character for
// character with jinja2 and transformers' apply_chat_template, whose outputs
// chat_template_oracle.py writes into the build tree (the ctest fixture chat_template_oracle).
// Hidden from a plain `text_tests` run; ctest runs it as `text_tests "[chat_template_oracle]"`.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "speculators/error.h"
#include "speculators/text/chat_template.h"

using speculators::ChatRenderOptions;
using speculators::load_chat_template;
using speculators::ModelChatTemplate;

namespace {

const std::string kOut = std::string(SPECULATORS_TEST_BINARY_DIR) + "/tests/chat_templates";
const std::string kSources = std::string(SPECULATORS_TEST_SOURCE_DIR) + "/tests/core/text/chat_templates";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("chat templates render as jinja2 and transformers do", "[.][chat_template_oracle]") {
  const auto expected = nlohmann::ordered_json::parse(slurp(kOut + "/expected.json"));
  std::map<std::string, ModelChatTemplate> models;
  std::size_t rendered = 0, raised = 0;
  for (const auto& c : expected["cases"]) {
    const std::string name = c["template"];
    if (!models.count(name)) {
      models.emplace(name, load_chat_template(kOut + "/models/" + name));
      CHECK(models.at(name).chat_template.source() == slurp(kSources + "/" + name + ".jinja"));
      CHECK(models.at(name).bos_token == expected["bos_token"]);
      CHECK(models.at(name).eos_token == expected["eos_token"]);
    }
    ChatRenderOptions options;
    options.add_generation_prompt = c["add_generation_prompt"];
    options.variables = c["variables"];
    INFO("template " << name << ", conversation " << c["conversation"].get<std::string>()
                     << ", add_generation_prompt " << options.add_generation_prompt << ", variables "
                     << options.variables.dump());
    if (c.contains("error")) {
      CHECK_THROWS_WITH(models.at(name).render(c["messages"], options),
                        Catch::Contains(c["error"].get<std::string>()));
      ++raised;
    } else {
      CHECK(models.at(name).render(c["messages"], options) == c["expected"].get<std::string>());
      ++rendered;
    }
  }
  CHECK(models.size() == 5);
  CHECK(rendered > 400);
  CHECK(raised > 0);
}

TEST_CASE("chat templates load from a list of named templates", "[.][chat_template_oracle]") {
  for (const char* name : {"llama3", "qwen25", "qwen3", "mistral", "gpt_oss"}) {
    const ModelChatTemplate model = load_chat_template(kOut + "/models/named_list", name);
    CHECK(model.chat_template.source() == slurp(kSources + "/" + name + ".jinja"));
    CHECK(model.bos_token == "<s>");  // {"content": "<s>", ...}
    CHECK(model.eos_token == "</s>");
  }
  CHECK_THROWS_WITH(load_chat_template(kOut + "/models/named_list"), Catch::Contains("no chat template named 'default'"));
}
