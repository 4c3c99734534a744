// libFuzzer driver for the tokenizer: the input is a tokenizer.json text, a NUL byte, then a text
// to encode. The JSON must either be refused with speculators::Error or load; a loaded tokenizer
// must encode the text, decode its ids (and ids past its vocabulary) and encode the text again to
// the same ids. Anything else (a crash, an ASan report, another exception) is a finding.
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_input.h"
#include "speculators/error.h"
#include "speculators/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  try {
    const auto tok = speculators::text::Tokenizer::from_json(json, "fuzz.json");
    const auto ids = tok.encode(text, true);
    speculators::fuzz::require(tok.encode(text, true) == ids);
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
    std::vector<std::uint32_t> odd = {0, 1, static_cast<std::uint32_t>(tok.vocab_size()), 0xFFFFFFFFu};
    (void)tok.decode(odd, false);
    for (std::uint32_t id : ids) speculators::fuzz::require(tok.id_to_token(id).has_value());
  } catch (const speculators::Error&) {
    // Refusing a malformed tokenizer.json with a clear error is the expected outcome.
  }
  return 0;
}
