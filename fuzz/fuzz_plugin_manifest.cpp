// libFuzzer driver for the plugin manifest reader (host/src/plugin_host/fingerprint.h:
// read_plugin_manifest, then check_manifest against this host), which runs on a
// <stem>.manifest.json before its .so is opened. Any input must either be refused with
// speculators::Error or give a manifest whose checks return a reason or pass. Anything else is
// a finding.
#include <string>

#include "fuzz_input.h"
#include "plugin_host/fingerprint.h"
#include "speculators/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = speculators::fuzz::scratch_path("x.manifest.json");
  speculators::fuzz::write_input(path, data, size);
  try {
    const speculators::PluginManifest manifest = speculators::read_plugin_manifest(path);
    const auto reason = speculators::check_manifest(manifest, speculators::HostFingerprint::current(), "x");
    if (reason) speculators::fuzz::require(reason->find('\n') == std::string::npos);
  } catch (const speculators::Error&) {
    // Refusing malformed input with a clear error is the expected outcome.
  }
  return 0;
}
