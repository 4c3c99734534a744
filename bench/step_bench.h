// One benchmark row: builds an algorithm plugin's draft at a named shape on a device, times its
// training steps (forward under the trainer's autocast, backward, AdamW) and relates the matrix
// work of a step to a plain matrix product of the same dtype on the same device, measured in the
// same run before and after the timed steps.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "op_profile.h"
#include "reference_compare.h"
#include "shapes.h"
#include "speculators/algorithm.h"
#include "speculators/json.h"
#include "timing.h"
#include "train/device.h"

namespace speculators::bench {

struct StepBenchOptions {
  int warmup = 1;
  int iters = 5;      // timed steps; the reported step is their median
  int rate_reps = 3;  // repetitions of the reference product before and again after the steps
  TrainingDevice device;
  std::optional<ReferenceOptions> reference;  // --compare reference
  std::string allocator;  // what keep_large_allocations_on_heap did (host/src/observe/allocator.h)
};

struct Result {
  std::string algorithm, shape, device, precision, allocator;
  std::int64_t seq_len = 0, ttt_steps = 0;  // the shape's, or the --seq-len / --ttt-steps override
  int threads = 0, blas_threads = 0;
  Spread step;                     // seconds per step, one sample per timed step
  double step_s = 0;               // the median step ...
  double forward_s = 0, backward_s = 0, optimizer_s = 0;  // ... and its phases
  double tokens_per_s = 0;
  double matmul_gflop = 0;         // per step, counted by the profiler
  double achieved_gflops = 0;      // matmul_gflop / step_s
  Spread rate_before, rate_after;  // reference product GFLOP/s before and after the timed steps
  double reference_gflops = 0;     // best of rate_before and rate_after
  double fraction = 0;             // achieved / reference
  double matmul_time_share = 0;    // share of the profiled step's op time spent in matrix products
  std::vector<std::pair<std::string, double>> top_other_ops;  // (op, share of op time)
  std::map<std::string, OpStats> matmul_ops;
  std::int64_t trainable_params = 0;
  double peak_rss_mib = 0;
  double peak_device_mib = -1;     // CUDA caching allocator peak during the timed steps; -1 on CPU
  Json reference;                  // --compare reference: reference_step.py's result; null otherwise
};

Result run_step_bench(const Algorithm& algorithm, const std::string& name, const Shape& shape,
                      const StepBenchOptions& options, const std::filesystem::path& work);

Json to_json(const Result& r);
void print_header(const StepBenchOptions& options, int threads, int blas_threads);
void print_row(const Result& r);

}  // namespace speculators::bench
