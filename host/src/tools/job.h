// Job resolution (docs/training.md; speculators/train/config/resolution.py): the host's own
// options, the algorithm's options, a YAML job file (`train:` block with groups, or a bare mapping)
// and command-line flags, merged with precedence flag > YAML > default. Unknown keys are errors
// that name the closest valid key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "speculators/args.h"
#include "speculators/json.h"
#include "speculators/schema.h"

namespace speculators {

// The groups of speculators/train/config/schema.py, in the order run.yaml and --help print them.
const std::vector<std::string>& job_groups();

// Options the host itself owns (verifier, data, optimizer, scheduler, trainer, logging, ...).
Schema host_schema();

// Host options plus an algorithm's; an algorithm may restate a host option of the same type to
// change its default or help. A clash of types is a plugin error naming both.
Schema merge_schemas(const Schema& host, const Schema& algorithm, const std::string& algorithm_name);

// What the command line says before any plugin is loaded.
struct CommandLine {
  std::string config_path;                 // positional JOB.yaml or --config
  std::vector<std::string> plugin_dirs;    // --plugin-dir (repeatable)
  std::vector<std::pair<std::string, std::string>> flags;  // (--flag, value or "" for bare flags)
  bool help = false;
  bool version = false;
  bool list_plugins = false;
  bool dump_config = false;
  std::string describe;                    // --describe NAME
};

// Splits argv into the pieces above; values stay text until the schema is known.
CommandLine parse_command_line(const std::vector<std::string>& argv);

// Reads the YAML job file into a flat key -> value map (values coerced with the schema). Errors
// name the file, line and key; unknown keys suggest the closest valid key (and its group).
Json read_job_yaml(const std::string& path, const Schema& schema);

// The speculator type named by flags, else by the YAML file, else the default ("eagle3"),
// before the algorithm's schema is known.
std::string peek_speculator_type(const CommandLine& cmd);

// Full resolution: defaults < YAML < flags. Throws Error(kUsage) on any bad key or value.
Args resolve_job(const CommandLine& cmd, const Schema& schema);

// The `train:`-wrapped YAML of the values that differ from their defaults, grouped
// (what --dump-config prints and run.yaml holds; re-loadable).
std::string job_to_yaml(const Args& args, const Schema& schema);

// --help text for the host and, when given, one algorithm's options.
std::string help_text(const Schema& schema);

}  // namespace speculators
