// libFuzzer driver for the chat-template interpreter. Any input, taken as template source, must
// either be refused with speculators::Error (a syntax error, or an error while rendering it over
// a small conversation) or render to a string. Anything else (a crash, an ASan report, another
// exception, a stack overflow) is a finding.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "speculators/error.h"
#include "speculators/text/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Héllo {{ x }} 😀"},
    {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHi", "reasoning_content": "hm",
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}])");
  const std::string source(reinterpret_cast<const char*>(data), size);
  try {
    const speculators::ChatTemplate chat_template(source);
    for (const bool prompt : {false, true}) {
      speculators::ChatRenderOptions options;
      options.add_generation_prompt = prompt;
      options.bos_token = "<s>";
      options.eos_token = "</s>";
      options.variables = {{"enable_thinking", prompt}, {"date_string", "1 Jan 2025"}};
      (void)chat_template.render(messages, options);
    }
  } catch (const speculators::Error&) {
    // refused cleanly
  }
  return 0;
}
