// Each Jinja construct chat templates use, one small template per case, against the output of
// transformers' own jinja2 environment recorded in chat_templates/constructs.json (the oracle
// fixture chat_template_oracle_setup re-renders every case with jinja2 and fails on any
// difference, so the recorded outputs stay jinja2's).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "speculators/text/chat_template.h"

TEST_CASE("chat template constructs render as jinja2 does", "[text][chat_template]") {
  const std::string path = std::string(SPECULATORS_TEST_SOURCE_DIR) + "/tests/core/text/chat_templates/constructs.json";
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  const auto cases = nlohmann::ordered_json::parse(in);
  REQUIRE(cases.size() > 40);
  for (const auto& c : cases) {
    INFO("case '" << c["name"].get<std::string>() << "': " << c["template"].get<std::string>());
    speculators::ChatRenderOptions options;
    options.variables = c["variables"];
    std::string got;
    try {
      got = speculators::ChatTemplate(c["template"].get<std::string>()).render(nlohmann::ordered_json::array(), options);
    } catch (const std::exception& e) {
      got = std::string("<error> ") + e.what();
    }
    CHECK(got == c["expected"].get<std::string>());
  }
}
