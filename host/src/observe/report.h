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

// A speculative-decoding measurement of one of the run's checkpoints (its eval.json, written by
// speculators-eval), shown next to the training estimate.
struct MeasuredAcceptance {
  std::string checkpoint;  // the checkpoint directory's name within the run
  Json eval;               // the eval.json object
};

// The <run_dir>/<checkpoint>/eval.json files, in checkpoint order; unreadable ones are skipped.
std::vector<MeasuredAcceptance> read_run_evaluations(const std::string& run_dir);

// The report page for these metric lines (and measurements, if any).
std::string render_report_html(const std::vector<Json>& lines, const std::string& title,
                               const std::vector<MeasuredAcceptance>& measured = {});

// Reads <run_dir>/metrics.jsonl and writes <run_dir>/report.html atomically; returns its path.
std::string write_run_report(const std::string& run_dir);

// `speculators-train report RUN_DIR`: returns the exit code; errors are printed, not thrown.
int run_report_command(const std::vector<std::string>& args);

}  // namespace speculators
