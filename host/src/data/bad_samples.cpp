// See bad_samples.h.
#include "data/bad_samples.h"

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

BadSamplePolicy parse_bad_sample_policy(const std::string& text) {
  if (text == "skip") return BadSamplePolicy::kSkip;
  if (text == "raise") return BadSamplePolicy::kRaise;
  fail_usage(cat("on_bad_sample must be skip or raise, got \"", text, "\""));
}

void BadSampleLog::report(const std::string& message) {
  if (policy_ == BadSamplePolicy::kRaise) fail_data(cat(message, " (--on-bad-sample raise)"));
  const auto n = ++count_;
  std::lock_guard<std::mutex> lock(mutex_);
  if (n <= kMaxWarnings) {
    log::warn(cat("skipping bad sample: ", message));
    if (n == kMaxWarnings) log::warn("further bad samples are counted but not shown");
  }
}

}  // namespace speculators
