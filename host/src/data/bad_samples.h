// What happens to a sample that cannot be used: the policy (skip or raise) and the thread-safe
// log that counts and reports skipped samples for one run.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace speculators {

// What to do with a sample that cannot be used (corrupt file, wrong shape, non-finite values,
// token mismatch, no supervised token): skip it with a warning and count it, or stop the run
// with a data error (exit code 4).
enum class BadSamplePolicy { kSkip, kRaise };
BadSamplePolicy parse_bad_sample_policy(const std::string& text);

// Shared by the sources and the loaders of one run; safe to call from several threads.
class BadSampleLog {
 public:
  explicit BadSampleLog(BadSamplePolicy policy = BadSamplePolicy::kSkip) : policy_(policy) {}
  // kRaise: throws Error(kData) with `message`. kSkip: counts it and warns (the first
  // kMaxWarnings messages; later ones are only counted).
  void report(const std::string& message);
  std::int64_t count() const { return count_.load(); }
  BadSamplePolicy policy() const { return policy_; }
  static constexpr std::int64_t kMaxWarnings = 20;

 private:
  BadSamplePolicy policy_;
  std::atomic<std::int64_t> count_{0};
  std::mutex mutex_;
};

}  // namespace speculators
