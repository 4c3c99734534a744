// libFuzzer driver for the YAML job reader (host/src/tools/job.h: read_job_yaml) against the
// host's own option schema, as `speculators-train --config FILE` reads it before any plugin is
// loaded. Any input must either be refused with speculators::Error (a usage error naming the file,
// line and key) or give values for known keys only. Anything else is a finding.
#include <string>

#include "fuzz_input.h"
#include "speculators/error.h"
#include "tools/job.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = speculators::fuzz::scratch_path("job.yaml");
  static const speculators::Schema schema = speculators::host_schema();
  speculators::fuzz::write_input(path, data, size);
  try {
    const speculators::Json values = speculators::read_job_yaml(path, schema);
    for (const auto& [key, value] : values.as_object()) {
      bool known = false;
      for (const auto& option : schema) known = known || option.key == key;
      speculators::fuzz::require(known);
    }
  } catch (const speculators::Error& e) {
    speculators::fuzz::require(e.code() == speculators::ExitCode::kUsage);
  }
  return 0;
}
