// Repeated measurements and their spread: the reference matrix-product rate the benchmark relates
// a step to (the best of several repetitions, taken before and after the timed steps) and the
// median of several step times. A noisy run shows as a wide spread in the report.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "speculators/json.h"

namespace speculators::bench {

struct Spread {
  std::vector<double> samples;  // in the order measured
  double min() const;
  double max() const;
  double median() const;
  // Index of the median sample (the lower one for an even count).
  std::size_t median_index() const;
  Json to_json() const;
};

// Rate in GFLOP/s of a square matrix product of side `n` in `dtype` on `device`: `reps`
// repetitions, each timing enough products for about `seconds_per_rep` of work (at least one),
// after one untimed product. The caller's autocast state does not matter: the operands already
// have the dtype.
Spread matmul_rate(torch::Device device, torch::ScalarType dtype, std::int64_t n, int reps,
                   double seconds_per_rep = 0.25);

}  // namespace speculators::bench
