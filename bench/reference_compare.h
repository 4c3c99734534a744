// speculators-bench --compare reference: the reference's own EAGLE-3 training step (speculators'
// Eagle3DraftModel forward with loss, backward, AdamW) at the same shape, weights and packed row,
// timed by bench/reference_step.py in a Python subprocess with the same thread count. The Python
// (the test virtual environment's, a test-only dependency) is found as the tests find it.
#pragma once

#include <filesystem>
#include <string>

#include "speculators/algorithm.h"
#include "speculators/json.h"

namespace speculators::bench {

struct ReferenceOptions {
  std::string python;  // empty: $SPECULATORS_TEST_PYTHON, else $SPECULATORS_VENV/bin/python, else ~/.cache/speculators/venv/bin/python
  std::string script;  // reference_step.py
  int warmup = 1, iters = 3, threads = 1;
};

// `s` in single quotes for the shell.
std::string quoted(const std::string& s);

// Runs `python script arguments` (arguments start with a space and are already quoted), stderr to
// `err`, and returns the JSON object the script prints on its last line of stdout. Throws Error
// with the tail of `err` when the script fails.
Json run_python_json(const std::string& python, const std::string& script, const std::string& arguments,
                     const std::filesystem::path& err);

// The interpreter to run, or throws a usage error that says how to provide it.
std::string reference_python(const ReferenceOptions& options);

// Writes the case (config.json, weights.safetensors, batch.safetensors) to `dir`, runs the script
// and returns its JSON result (step_s, attention backend, versions, ...). Throws Error with the
// script's own message when it fails.
Json run_reference_step(DraftModel& model, const Batch& batch, std::int64_t ttt_steps, const ReferenceOptions& options,
                        const std::filesystem::path& dir);

}  // namespace speculators::bench
