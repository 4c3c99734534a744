// See fused_silu_gate.h. With s = σ(g) = 1 / (1 + e^−g):
//   y = g·s·u,   dg = dy·u·s·(1 + g·(1 − s)),   du = dy·g·s.
// e^−g is capped at e^87 (fp32's largest finite exp): below g = −87, s is then 1/(1 + e^87), as ~0
// as the exact value. The row kernels use the vector helpers of simd_rows.h.
#include "fused_silu_gate.h"

#include <ATen/Parallel.h>

#include "simd_rows.h"
#include "speculators/error.h"

namespace speculators {
namespace nn {
namespace fused {
namespace {

using namespace simd;  // NOLINT(google-build-using-namespace): the kernels are written in its vector types
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

SPECULATORS_INLINE F8 sigmoid8(F8 g) {
  const F8 neg = -g, cap = splat(87.0f);
  return splat(1.0f) / (splat(1.0f) + exp8(neg < cap ? neg : cap));
}

SPECULATORS_INLINE float sigmoid1(float g) { return 1.0f / (1.0f + exp1(std::min(-g, 87.0f))); }

// y[:n] = silu(g)·u; y may be g.
SPECULATORS_ROW_KERNEL void forward_span(const float* g, const float* u, float* y, std::int64_t n) {
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const F8 a = load(g + j);
    store(y + j, a * sigmoid8(a) * load(u + j));
  }
  for (; j < n; ++j) y[j] = g[j] * sigmoid1(g[j]) * u[j];
}

SPECULATORS_ROW_KERNEL void backward_span(const float* dy, const float* g, const float* u, float* dg, float* du,
                                          std::int64_t n) {
  const F8 one = splat(1.0f);
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const F8 a = load(g + j), d = load(dy + j), s = sigmoid8(a);
    store(dg + j, d * load(u + j) * s * (one + a * (one - s)));
    store(du + j, d * a * s);
  }
  for (; j < n; ++j) {
    const float s = sigmoid1(g[j]);
    dg[j] = dy[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    du[j] = dy[j] * g[j] * s;
  }
}

template <class F>
void for_each_span(std::int64_t n, F&& f) {
  at::parallel_for(0, n, kElementsPerTask, [&](std::int64_t begin, std::int64_t end) { f(begin, end - begin); });
}

void silu_gate_into(const torch::Tensor& gate, const torch::Tensor& up, const torch::Tensor& out) {
  const float *g = gate.data_ptr<float>(), *u = up.data_ptr<float>();
  float* y = out.data_ptr<float>();
  for_each_span(gate.numel(), [&](std::int64_t o, std::int64_t n) { forward_span(g + o, u + o, y + o, n); });
}

class SiluGateFunction : public torch::autograd::Function<SiluGateFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_in, const torch::Tensor& up_in) {
    const auto gate = gate_in.contiguous(), up = up_in.contiguous();
    ctx->save_for_backward({gate, up});
    auto y = torch::empty(gate.sizes(), gate.options());
    silu_gate_into(gate, up, y);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1];
    const auto dy = grad_outputs[0].contiguous();
    auto dg = torch::empty(gate.sizes(), gate.options()), du = torch::empty(up.sizes(), up.options());
    const float *d = dy.data_ptr<float>(), *g = gate.data_ptr<float>(), *u = up.data_ptr<float>();
    float *dgp = dg.data_ptr<float>(), *dup = du.data_ptr<float>();
    for_each_span(gate.numel(), [&](std::int64_t o, std::int64_t n) {
      backward_span(d + o, g + o, u + o, dgp + o, dup + o, n);
    });
    return {dg, du};
  }
};

}  // namespace

bool silu_gate_fusable(const torch::Tensor& gate, const torch::Tensor& up) {
  const auto fp32_cpu = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat; };
  return fp32_cpu(gate) && fp32_cpu(up) && gate.sizes() == up.sizes();
}

torch::Tensor silu_gate(const torch::Tensor& gate, const torch::Tensor& up) { return SiluGateFunction::apply(gate, up); }

torch::Tensor silu_gate_(const torch::Tensor& gate, const torch::Tensor& up) {
  if (!silu_gate_fusable(gate, up) || !gate.is_contiguous() || (torch::GradMode::is_enabled() && gate.requires_grad())) {
    fail("fused::silu_gate_: gate must be a contiguous fp32 CPU tensor that needs no gradient, of up's shape");
  }
  silu_gate_into(gate, up.contiguous(), gate);
  return gate;
}

}  // namespace fused
}  // namespace nn
}  // namespace speculators
