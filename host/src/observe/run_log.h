// Where a run's numbers go (as speculators/train/logger.py: setup_metric_logger): one JSON object
// per line in <log-dir>/metrics.jsonl, the same scalars as TensorBoard events
// (<log-dir>/<run-name>/, with --logger tensorboard) and, at the end of a run, the HTML report
// <log-dir>/report.html (report.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "observe/tensorboard.h"
#include "speculators/json.h"

namespace speculators {

// Where metrics.jsonl and the TensorBoard run go (train/train_options.h fills it from the job).
struct LogOptions {
  std::string dir;       // --log-dir, else --save-path
  std::string logger;    // comma list: tensorboard, or empty
  std::string run_name;  // --run-name, else "tensorboard"
};

class RunLog {
 public:
  explicit RunLog(const LogOptions& options);
  // Opens the logs. metrics.jsonl is cut to `keep_bytes` (0 for a fresh run; a resumed run keeps
  // exactly the lines written before its checkpoint, so the file reads as one uninterrupted run).
  void start(std::uint64_t keep_bytes);
  // Appends `line` to metrics.jsonl and its numeric entries (other than epoch/global_step) to
  // TensorBoard at `step`.
  void write(const Json& line, std::int64_t step);
  std::uint64_t metrics_bytes() const;
  // Writes report.html from metrics.jsonl; a failure is logged, never fatal for the run.
  void write_report() const;
  const std::string& dir() const { return dir_; }
  const std::string& metrics_path() const { return metrics_path_; }

 private:
  std::string dir_;
  std::string metrics_path_;
  std::string tb_dir_;
  std::unique_ptr<EventFileWriter> tb_;
};

// --run-name with its placeholders ({time}, {utc_time}, {rank}, {local_rank};
// speculators/train/logger.py: _substitute_placeholders) expanded.
std::string expand_run_name(const std::string& pattern);

}  // namespace speculators
