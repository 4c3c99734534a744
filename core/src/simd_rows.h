// Vector helpers for the fused row kernels of core (fused_divergence.cpp, fused_inference.cpp,
// fused_silu_gate.cpp): GCC/Clang vector extensions of 8 floats (lowered to whatever SIMD the
// target offers) and an exp of their own (Cody–Waite range reduction and a degree-6 polynomial,
// about 1 ulp), so that the inner loops vectorise without intrinsics. On x86-64 each function
// marked SPECULATORS_ROW_KERNEL is also compiled for AVX2 and picked at load time by the CPU
// (GCC/Clang target_clones), which is about four times faster than the baseline SSE2 code.
// Internal to core.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

// The 8-float vectors are only passed between inlined helpers; their ABI does not matter.
#pragma GCC diagnostic ignored "-Wpsabi"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPECULATORS_ROW_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define SPECULATORS_ROW_KERNEL
#endif
#define SPECULATORS_INLINE inline __attribute__((always_inline))

namespace speculators {
namespace nn {
namespace fused {
namespace simd {

typedef float F8 __attribute__((vector_size(32)));
typedef std::int32_t I8 __attribute__((vector_size(32)));
typedef double D4 __attribute__((vector_size(32)));
constexpr std::int64_t kLanes = 8;
// Elements per task when a kernel splits its work with at::parallel_for (its grain).
constexpr std::int64_t kElementsPerTask = 1 << 15;

SPECULATORS_INLINE F8 load(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SPECULATORS_INLINE void store(float* p, F8 v) { std::memcpy(p, &v, sizeof(v)); }
SPECULATORS_INLINE F8 splat(float x) { return F8{} + x; }

// Adds the 8 lanes of v to two fp64 accumulators.
SPECULATORS_INLINE void add_wide(D4& lo, D4& hi, F8 v) {
  lo += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), D4);
  hi += __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), D4);
}

SPECULATORS_INLINE double lane_sum(F8 v) {
  double s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// exp(x) for 8 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n from the exponent
// bits. Below -87.3 (where fp32 exp underflows) the result is 0; there is no overflow check (the
// callers pass x − max ≤ 0).
SPECULATORS_INLINE F8 exp8(F8 x) {
  const F8 lo = splat(-87.3f);
  const F8 magic = splat(12582912.0f);  // 1.5·2^23: adding it rounds to an integer
  const F8 clamped = x < lo ? lo : x;
  const F8 t = clamped * 1.44269504088896341f + magic;
  const F8 n = t - magic;
  const I8 ni = (I8)t - (I8)magic;
  F8 r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F8 p = splat(1.0f / 720);
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const F8 scale = (F8)((ni + 127) << 23);
  const F8 out = p * scale;
  return x < lo ? F8{} : out;
}

SPECULATORS_INLINE float exp1(float x) {
  F8 v = splat(x);
  return exp8(v)[0];
}

SPECULATORS_INLINE float row_max(const float* x, std::int64_t v) {
  std::int64_t j = 0;
  float m = -std::numeric_limits<float>::infinity();
  if (v >= kLanes) {
    F8 acc = load(x);
    for (j = kLanes; j + kLanes <= v; j += kLanes) {
      const F8 a = load(x + j);
      acc = acc > a ? acc : a;
    }
    for (int i = 0; i < kLanes; ++i) m = std::max(m, acc[i]);
  }
  for (; j < v; ++j) m = std::max(m, x[j]);
  return m;
}

}  // namespace simd
}  // namespace fused
}  // namespace nn
}  // namespace speculators
