// libFuzzer driver for the data.jsonl reader (host/src/data/token_rows.h: read_data_jsonl): each
// input is written as a data.jsonl file. It must either be refused with speculators::Error (a data
// error naming the file and line) or give rows whose input_ids and loss_mask have equal lengths
// and whose masks hold only 0 and 1. Anything else is a finding.
#include <string>

#include "data/token_rows.h"
#include "fuzz_input.h"
#include "speculators/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = speculators::fuzz::scratch_path("data.jsonl");
  speculators::fuzz::write_input(path, data, size);
  try {
    for (const auto& row : speculators::read_data_jsonl(path)) {
      speculators::fuzz::require(row.input_ids.size() == row.loss_mask.size() && row.line > 0);
      for (auto m : row.loss_mask) speculators::fuzz::require(m == 0 || m == 1);
    }
  } catch (const speculators::Error& e) {
    speculators::fuzz::require(e.code() == speculators::ExitCode::kData);
  }
  return 0;
}
