// metrics.jsonl, TensorBoard events and the end-of-run report (see run_log.h).
#include "observe/run_log.h"

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "observe/report.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace fs = std::filesystem;

namespace speculators {

std::string expand_run_name(const std::string& pattern) {
  std::time_t now = std::time(nullptr);
  char local[32], utc[32];
  std::strftime(local, sizeof(local), "%Y%m%d_%H%M%S", std::localtime(&now));
  std::strftime(utc, sizeof(utc), "%Y%m%d_%H%M%S", std::gmtime(&now));
  const std::pair<const char*, std::string> subs[] = {
      {"{time}", local}, {"{utc_time}", utc}, {"{rank}", "0"}, {"{local_rank}", "0"}};
  std::string out = pattern;
  for (const auto& [key, value] : subs) {
    for (auto pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + value.size())) {
      out.replace(pos, std::string(key).size(), value);
    }
  }
  return out;
}

RunLog::RunLog(const LogOptions& options) {
  dir_ = options.dir;
  metrics_path_ = (fs::path(dir_) / "metrics.jsonl").string();
  const std::string& loggers = options.logger;
  std::size_t begin = 0;
  while (begin <= loggers.size()) {
    auto end = loggers.find(',', begin);
    if (end == std::string::npos) end = loggers.size();
    const std::string name = loggers.substr(begin, end - begin);
    if (name == "tensorboard") {
      // The run's directory stays inside --log-dir: one name, not a path.
      const std::string run = expand_run_name(options.run_name);
      if (run.empty() || run == "." || run == ".." || run.find('/') != std::string::npos) {
        fail_usage(cat("--run-name \"", options.run_name, "\": expected a directory name inside --log-dir (no '/', "
                       "not '.' or '..')"));
      }
      tb_dir_ = (fs::path(dir_) / run).string();
    } else if (!name.empty()) {
      fail_usage(cat("--logger: \"", name, "\" is not available in this build (valid: tensorboard, or empty "
                     "for metrics.jsonl and the report only)"));
    }
    begin = end + 1;
  }
}

void RunLog::start(std::uint64_t keep_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail_usage(cat(dir_, ": cannot create the log directory: ", ec.message()));
  if (keep_bytes == 0 || !fs::exists(metrics_path_)) {
    std::ofstream(metrics_path_, std::ios::trunc);
  } else if (fs::file_size(metrics_path_) > keep_bytes) {
    fs::resize_file(metrics_path_, keep_bytes);
  }
  if (!tb_dir_.empty()) tb_ = std::make_unique<EventFileWriter>(tb_dir_);
}

void RunLog::write(const Json& line, std::int64_t step) {
  {
    // metrics.jsonl stays strict JSON: a non-finite value (a skipped step's loss) is null.
    Json strict = line;
    for (auto& [key, value] : strict.as_object()) {
      if (value.is_float() && !std::isfinite(value.as_double())) value = Json(nullptr);
    }
    std::ofstream out(metrics_path_, std::ios::app);
    out << strict.dump() << "\n";
    if (!out) fail(cat(metrics_path_, ": cannot append a metrics line"));
  }
  if (!tb_) return;
  std::vector<std::pair<std::string, float>> scalars;
  for (const auto& [key, value] : line.as_object()) {
    if (key == "epoch" || key == "global_step" || !value.is_number()) continue;
    scalars.emplace_back(key, static_cast<float>(value.as_double()));
  }
  tb_->add_scalars(step, scalars);
  tb_->flush();
}

std::uint64_t RunLog::metrics_bytes() const {
  std::error_code ec;
  auto size = fs::file_size(metrics_path_, ec);
  return ec ? 0 : static_cast<std::uint64_t>(size);
}

void RunLog::write_report() const {
  try {
    const std::string out = write_run_report(dir_);
    log::info(cat("report: ", out));
  } catch (const Error& e) {
    log::warn(cat("no report written: ", e.what()));
  }
}

}  // namespace speculators
