// See fused_divergence.h. The row kernels are built from the vector helpers of simd_rows.h. Sums are
// accumulated in fp32 over blocks of 256 elements and in fp64 across blocks. Rows are independent
// and spread over LibTorch's intra-op threads.
#include "fused_divergence.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd_rows.h"

namespace speculators {
namespace nn {
namespace fused {
namespace {

using namespace simd;  // NOLINT(google-build-using-namespace): the kernels are written in its vector types

constexpr std::int64_t kBlock = 256;  // elements summed in fp32 before the fp64 accumulator

// Σ exp(x − shift) and, when p is given, Σ p·x (terms with p = 0 count 0; the products are summed
// in fp64, since KL takes the difference of two such sums).
SPECULATORS_INLINE void row_sums(const float* x, const float* p, std::int64_t v, float shift, double* sum_exp, double* dot) {
  double se = 0, d = 0;
  std::int64_t j = 0;
  const F8 s8 = splat(shift);
  D4 d_lo = D4{}, d_hi = D4{};
  while (j + kLanes <= v) {
    F8 e = F8{};
    const std::int64_t stop = std::min(v, j + kBlock);
    for (; j + kLanes <= stop; j += kLanes) {
      const F8 a = load(x + j);
      e += exp8(a - s8);
      if (p != nullptr) {
        const F8 b = load(p + j);
        add_wide(d_lo, d_hi, b > 0 ? b * a : F8{});
      }
    }
    se += lane_sum(e);
  }
  for (int i = 0; i < 4; ++i) d += d_lo[i] + d_hi[i];
  for (; j < v; ++j) {
    se += exp1(x[j] - shift);
    if (p != nullptr && p[j] > 0) d += static_cast<double>(p[j]) * x[j];
  }
  *sum_exp = se;
  *dot = d;
}

// One row of target logits: writes softmax into p; stats = (log Σ exp(x), Σ p·x, Σ p).
SPECULATORS_ROW_KERNEL void target_row(const float* x, float* p, std::int64_t v, double* stats) {
  const float m = row_max(x, v);
  double se = 0, unused = 0;
  row_sums(x, nullptr, v, m, &se, &unused);
  const float lse = m + static_cast<float>(std::log(se));
  const F8 l8 = splat(lse);
  double mass = 0;
  std::int64_t j = 0;
  while (j + kLanes <= v) {
    F8 acc = F8{};
    const std::int64_t stop = std::min(v, j + kBlock);
    for (; j + kLanes <= stop; j += kLanes) {
      const F8 q = exp8(load(x + j) - l8);
      store(p + j, q);
      acc += q;
    }
    mass += lane_sum(acc);
  }
  for (; j < v; ++j) {
    p[j] = exp1(x[j] - lse);
    mass += p[j];
  }
  double dot = 0;
  row_sums(x, p, v, m, &se, &dot);  // Σ p·x, summed as forward_row sums Σ p·(draft logits)
  stats[0] = m + std::log(se);      // as forward_row computes its lse
  stats[1] = dot;
  stats[2] = mass;
}

// One row of draft logits: log Σ exp(x) and Σ p·x (p may be null).
SPECULATORS_ROW_KERNEL void forward_row(const float* x, const float* p, std::int64_t v, double* lse, double* dot) {
  const float m = row_max(x, v);
  double se = 0;
  row_sums(x, p, v, m, &se, dot);
  *lse = m + std::log(se);
}

// One row of the gradient: a·exp(x − lse) − wk·p (p may be null).
SPECULATORS_ROW_KERNEL void backward_row(const float* x, const float* p, std::int64_t v, float lse, float a, float wk,
                                         float* g) {
  const F8 l8 = splat(lse);
  std::int64_t j = 0;
  for (; j + kLanes <= v; j += kLanes) {
    F8 q = exp8(load(x + j) - l8) * a;
    if (p != nullptr) q -= load(p + j) * wk;
    store(g + j, q);
  }
  for (; j < v; ++j) g[j] = exp1(x[j] - lse) * a - (p != nullptr ? p[j] * wk : 0.0f);
}

void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat && t.is_contiguous() && t.device().is_cpu(), "fused divergence: ", what,
              " must be a contiguous fp32 CPU tensor");
}

}  // namespace

void target_rows(const torch::Tensor& target_logits, torch::Tensor& probs, torch::Tensor& stats) {
  check_float(target_logits, "target_logits");
  check_float(probs, "probs");
  TORCH_CHECK(stats.scalar_type() == torch::kDouble && stats.is_contiguous(), "fused divergence: stats must be fp64");
  const std::int64_t n = target_logits.size(0), v = target_logits.size(1);
  const float* t = target_logits.data_ptr<float>();
  float* out = probs.data_ptr<float>();
  double* st = stats.data_ptr<double>();
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) target_row(t + i * v, out + i * v, v, st + 3 * i);
  });
}

void forward_rows(const torch::Tensor& logits, const torch::Tensor& probs, const torch::Tensor& stats,
                  const torch::Tensor& label, torch::Tensor& lse, torch::Tensor* kl, torch::Tensor* ce) {
  check_float(logits, "logits");
  check_float(lse, "lse");
  if (kl != nullptr) check_float(probs, "probs");
  const std::int64_t n = logits.size(0), v = logits.size(1);
  const float* x = logits.data_ptr<float>();
  const float* p = kl != nullptr ? probs.data_ptr<float>() : nullptr;
  const double* st = kl != nullptr ? stats.data_ptr<double>() : nullptr;
  const std::int64_t* lab = ce != nullptr ? label.data_ptr<std::int64_t>() : nullptr;
  float* lse_out = lse.data_ptr<float>();
  float* kl_out = kl != nullptr ? kl->data_ptr<float>() : nullptr;
  float* ce_out = ce != nullptr ? ce->data_ptr<float>() : nullptr;
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const float* row = x + i * v;
      double l = 0, dot = 0;
      forward_row(row, p != nullptr ? p + i * v : nullptr, v, &l, &dot);
      lse_out[i] = static_cast<float>(l);
      if (kl_out != nullptr) {
        const double* s = st + 3 * i;
        kl_out[i] = static_cast<float>((s[1] - dot) + s[2] * (l - s[0]));
      }
      if (ce_out != nullptr) ce_out[i] = static_cast<float>(l - row[lab[i]]);
    }
  });
}

void backward_rows(const torch::Tensor& logits, const torch::Tensor& probs, const torch::Tensor& label,
                   const torch::Tensor& lse, const torch::Tensor& g_kl, const torch::Tensor& g_ce,
                   torch::Tensor& grad) {
  check_float(logits, "logits");
  check_float(grad, "grad");
  const std::int64_t n = logits.size(0), v = logits.size(1);
  const auto gk_t = g_kl.defined() ? g_kl.to(torch::kFloat).contiguous() : torch::Tensor();
  const auto gc_t = g_ce.defined() ? g_ce.to(torch::kFloat).contiguous() : torch::Tensor();
  if (gk_t.defined()) check_float(probs, "probs");
  const float* x = logits.data_ptr<float>();
  const float* p = gk_t.defined() ? probs.data_ptr<float>() : nullptr;
  const float* gk = gk_t.defined() ? gk_t.data_ptr<float>() : nullptr;
  const float* gc = gc_t.defined() ? gc_t.data_ptr<float>() : nullptr;
  const std::int64_t* lab = gc != nullptr ? label.data_ptr<std::int64_t>() : nullptr;
  const float* l = lse.data_ptr<float>();
  float* out = grad.data_ptr<float>();
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const float wk = gk != nullptr ? gk[i] : 0.0f;
      const float wc = gc != nullptr ? gc[i] : 0.0f;
      const float a = wk + wc;
      const float* row = x + i * v;
      const float* prow = p != nullptr ? p + i * v : nullptr;
      float* g = out + i * v;
      if (wk == 0 && wc == 0) {  // rows outside the loss mask
        std::memset(g, 0, static_cast<std::size_t>(v) * sizeof(float));
        continue;
      }
      backward_row(row, prow, v, l[i], a, wk, g);
      if (lab != nullptr) g[lab[i]] -= wc;
    }
  });
}

}  // namespace fused
}  // namespace nn
}  // namespace speculators
