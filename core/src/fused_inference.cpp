// See fused_inference.h. The row kernels are built from the vector helpers of simd_rows.h; rows are
// independent and spread over LibTorch's intra-op threads.
#include "fused_inference.h"

#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>

#include "simd_rows.h"
#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {
namespace nn {
namespace fused {
namespace {

using namespace simd;  // NOLINT(google-build-using-namespace): the kernels are written in its vector types

// x[:n] ← exp(x[:n] − max x[:n]), x[n:s] ← 0; returns Σ x[:n].
SPECULATORS_ROW_KERNEL float exp_row(float* x, std::int64_t n, std::int64_t s) {
  const F8 m8 = splat(row_max(x, n));
  F8 acc = F8{};
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const F8 e = exp8(load(x + j) - m8);
    store(x + j, e);
    acc += e;
  }
  double sum = lane_sum(acc);
  for (; j < n; ++j) {
    x[j] = exp1(x[j] - m8[0]);
    sum += x[j];
  }
  std::memset(x + n, 0, static_cast<std::size_t>(s - n) * sizeof(float));
  return static_cast<float>(sum);
}

}  // namespace

bool inference_fusable(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous() &&
         !(torch::GradMode::is_enabled() && t.requires_grad());
}

torch::Tensor exp_rows_(const torch::Tensor& p, std::int64_t causal_queries) {
  if (!inference_fusable(p) || p.dim() != 2) fail("fused::exp_rows_: p must be a contiguous fp32 CPU [R, S] tensor");
  const std::int64_t rows = p.size(0), s = p.size(1);
  if (causal_queries < 0 || causal_queries > s) {
    fail(cat("fused::exp_rows_: causal_queries must be in [0, ", s, "], got ", causal_queries));
  }
  torch::Tensor sums = torch::empty({rows}, p.options());
  float* x = p.data_ptr<float>();
  float* out = sums.data_ptr<float>();
  at::parallel_for(0, rows, std::max<std::int64_t>(1, kElementsPerTask / std::max<std::int64_t>(s, 1)),
                   [&](std::int64_t begin, std::int64_t end) {
                     for (std::int64_t r = begin; r < end; ++r) {
                       const std::int64_t n = causal_queries > 0 ? s - causal_queries + r % causal_queries + 1 : s;
                       out[r] = exp_row(x + r * s, n, s);
                     }
                   });
  return sums;
}

}  // namespace fused
}  // namespace nn
}  // namespace speculators
