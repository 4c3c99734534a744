// The run report: one self-contained HTML file (no network, no external script or style) with
// the run's metrics.jsonl embedded as data and a small inline script that draws SVG plots of
// train/validation loss, per-step acceptance full_acc_k, estimated acceptance length, learning
// rate and tokens/s over optimizer steps. Written at the end of every run and by
// `speculators-train report RUN_DIR`.
#pragma once

#include <string>
#include <vector>

#include "speculators/json.h"

namespace speculators {

// Reads <run_dir>/metrics.jsonl (errors name the file and line).
std::vector<Json> read_metrics_jsonl(const std::string& path);

// The report page for these metric lines.
std::string render_report_html(const std::vector<Json>& lines, const std::string& title);

// Reads <run_dir>/metrics.jsonl and writes <run_dir>/report.html atomically; returns its path.
std::string write_run_report(const std::string& run_dir);

// `speculators-train report RUN_DIR`: returns the exit code; errors are printed, not thrown.
int run_report_command(const std::vector<std::string>& args);

}  // namespace speculators
