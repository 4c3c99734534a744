// libFuzzer driver for core's JSON parser (speculators/json.h: Json::parse), which reads every
// config.json, manifest and index a stranger can hand over. Any input must either be refused with
// speculators::Error (syntax, nesting deeper than 256, a number no double holds) or parse to a
// value whose compact dump parses back to the same value. Anything else is a finding.
#include <string>

#include "fuzz_input.h"
#include "speculators/error.h"
#include "speculators/json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const speculators::Json value = speculators::Json::parse(text, "fuzz.json");
    const std::string dumped = value.dump();
    speculators::fuzz::require(speculators::Json::parse(dumped, "dumped.json") == value);
    (void)value.dump_python();
  } catch (const speculators::Error&) {
    // Refusing malformed input with a clear error is the expected outcome.
  }
  return 0;
}
