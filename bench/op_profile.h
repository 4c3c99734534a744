// Operator-level profile of one training step: exclusive CPU time per ATen operator and the
// floating-point work of the matrix products (mm, addmm, bmm), as LibTorch's profiler counts it
// from the input shapes. The profiler API is the one part of the benchmark that depends on the
// LibTorch version; it stays in op_profile.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace speculators::bench {

struct OpStats {
  double self_us = 0;      // exclusive time: the op's own time, children excluded
  std::int64_t calls = 0;
  std::uint64_t flops = 0;  // counted for matrix products only
};

struct OpProfile {
  std::map<std::string, OpStats> ops;
  double total_self_us = 0;
  std::uint64_t matmul_flops = 0;
  double matmul_us = 0;
  static bool is_matmul(const std::string& op);
};

// Runs `step` once under the profiler.
OpProfile profile_ops(const std::function<void()>& step);

}  // namespace speculators::bench
