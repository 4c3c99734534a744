// Command-line parsing for the executables built on CLI11, with the project's exit codes
// (README.md): CLI11's own message for an option it rejects, then exit 2 (usage), not CLI11's
// internal codes.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>

#include "speculators/error.h"

namespace speculators {

// std::nullopt: go on. Otherwise the status to return from main: 0 after --help, 2 after a
// rejected command line (CLI11 has printed why).
inline std::optional<int> parse_cli(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  }
}

}  // namespace speculators
