// A progress bar for long loops: count, rate, ETA and a caller-supplied postfix (loss, tokens/s).
// On a terminal it redraws one line; otherwise (logs, CI) it prints a line every `interval`
// seconds and at the end, so a redirected run still shows that it is alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace speculators {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total, double interval_seconds = 10.0);
  ~ProgressBar();
  void update(std::int64_t done, const std::string& postfix = "");
  void finish(const std::string& postfix = "");

 private:
  void draw(bool final_line);
  std::string label_;
  std::int64_t total_;
  std::int64_t done_ = 0;
  std::string postfix_;
  bool tty_;
  bool finished_ = false;
  double interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// "1:02:03" / "02:03"
std::string format_duration(double seconds);

}  // namespace speculators
