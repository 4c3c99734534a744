// ProgressBar (see progress.h).
#include "observe/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace speculators {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

ProgressBar::ProgressBar(std::string label, std::int64_t total, double interval_seconds)
    : label_(std::move(label)),
      total_(total),
      tty_(::isatty(STDERR_FILENO) != 0),
      interval_(interval_seconds),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && done_ > 0) finish(postfix_);
}

void ProgressBar::update(std::int64_t done, const std::string& postfix) {
  done_ = done;
  postfix_ = postfix;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_ ? since >= 0.1 : since >= interval_) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& postfix) {
  postfix_ = postfix;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  double eta = rate > 0 && total_ > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  char head[160];
  if (total_ > 0) {
    const int width = 24;
    int filled = static_cast<int>(width * std::min<double>(1.0, static_cast<double>(done_) / static_cast<double>(total_)));
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::snprintf(head, sizeof(head), "%s [%s] %lld/%lld %s<%s", label_.c_str(), bar.c_str(),
                  static_cast<long long>(done_), static_cast<long long>(total_), format_duration(elapsed).c_str(),
                  final_line ? "00:00" : format_duration(eta).c_str());
  } else {
    std::snprintf(head, sizeof(head), "%s %lld %s", label_.c_str(), static_cast<long long>(done_),
                  format_duration(elapsed).c_str());
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s %s%s", head, postfix_.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s %s\n", head, postfix_.c_str());
  }
  std::fflush(stderr);
}

}  // namespace speculators
