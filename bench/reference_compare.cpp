// See reference_compare.h.
#include "reference_compare.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/tensor_io.h"

namespace speculators::bench {

namespace fs = std::filesystem;

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string reference_python(const ReferenceOptions& options) {
  std::string python = options.python;
  std::string origin = "--python";
  if (python.empty()) {
    if (const char* env = std::getenv("SPECULATORS_TEST_PYTHON")) {
      python = env, origin = "SPECULATORS_TEST_PYTHON";
    } else if (const char* venv = std::getenv("SPECULATORS_VENV")) {
      python = std::string(venv) + "/bin/python", origin = "SPECULATORS_VENV";
    } else if (const char* home = std::getenv("HOME")) {
      python = std::string(home) + "/.cache/speculators/venv/bin/python", origin = "the default test venv";
    }
  }
  if (python.empty() || !fs::exists(python)) {
    fail_usage(cat("--compare reference: no Python for the reference (", origin, ": \"", python,
                   "\" does not exist). The reference (speculators) lives in the test-only virtual environment "
                   "that scripts/setup makes; run it, or pass --python PATH or set SPECULATORS_TEST_PYTHON"));
  }
  if (!fs::exists(options.script)) {
    fail_usage(cat("--compare reference: the reference step script ", options.script,
                   " does not exist; pass --reference-script PATH (bench/reference_step.py in the sources)"));
  }
  return python;
}

Json run_python_json(const std::string& python, const std::string& script, const std::string& arguments,
                     const fs::path& err) {
  const std::string command = cat(quoted(python), " ", quoted(script), arguments, " 2>", quoted(err.string()));
  log::info(cat("reference run: ", command));
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) fail(cat("--compare reference: could not start ", python));
  std::string out;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  const int status = ::pclose(pipe);
  if (status != 0) {
    std::string tail = read_text(err);
    if (tail.size() > 3000) tail = "..." + tail.substr(tail.size() - 3000);
    fail(cat("--compare reference: ", script, " failed (status ", status, "):\n", tail));
  }
  // The script prints one JSON object, on its last line.
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const auto start = out.rfind('\n');
  const std::string line = start == std::string::npos ? out : out.substr(start + 1);
  if (line.empty() || line[0] != '{') fail(cat("--compare reference: no JSON result from ", script, ": ", out));
  return Json::parse(line, fs::path(script).filename().string() + " output");
}

Json run_reference_step(DraftModel& model, const Batch& batch, std::int64_t ttt_steps, const ReferenceOptions& options,
                        const fs::path& dir) {
  const std::string python = reference_python(options);
  fs::create_directories(dir);
  {
    std::ofstream config(dir / "config.json");
    config << model.config_json().dump();
  }
  std::map<std::string, torch::Tensor> weights;
  for (const auto& item : model.named_parameters()) weights[item.key()] = item.value().detach().cpu();
  for (const auto& item : model.named_buffers()) weights[item.key()] = item.value().detach().cpu();
  save_safetensors((dir / "weights.safetensors").string(), weights);
  std::map<std::string, torch::Tensor> row;
  for (const auto& [key, t] : batch) {
    if (t.defined()) row[key] = t.detach().cpu();
  }
  save_safetensors((dir / "batch.safetensors").string(), row);
  return run_python_json(python, options.script,
                         cat(" --case ", quoted(dir.string()), " --threads ", options.threads, " --ttt-steps ", ttt_steps,
                             " --warmup ", options.warmup, " --iters ", options.iters),
                         dir / "stderr.txt");
}

}  // namespace speculators::bench
