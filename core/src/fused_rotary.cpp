// See fused_rotary.h. With h = hd/2 and rotate_half(x) = [−x[h:], x[:h]]:
//   y[j] = x[j]·c[j] − x[j+h]·s[j] (j < h),   y[j] = x[j]·c[j] + x[j−h]·s[j] (j ≥ h);
//   dx[i] = g[i]·c[i] + g[i+h]·s[i+h] (i < h), dx[i] = g[i]·c[i] − g[i−h]·s[i−h] (i ≥ h).
#include "fused_rotary.h"

#include <ATen/Parallel.h>

namespace speculators {
namespace nn {
namespace fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Walks the rows of x [B, heads, L, hd] through its strides (the last one is 1) in the order of a
// contiguous tensor of the same shape; the tables are contiguous [B, L, hd].
template <class F>
void for_each_row(const torch::Tensor& x, std::int64_t grain, F&& f) {
  const std::int64_t heads = x.size(1), length = x.size(2), hd = x.size(3);
  const std::int64_t xb = x.stride(0), xh = x.stride(1), xl = x.stride(2);
  at::parallel_for(0, x.numel() / hd, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t l = row % length, h = (row / length) % heads, b = row / (length * heads);
      f(b * xb + h * xh + l * xl, (b * length + l) * hd, row * hd);
    }
  });
}

torch::Tensor last_dim_contiguous(const torch::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& cos_in,
                               const torch::Tensor& sin_in) {
    const auto x = last_dim_contiguous(x_in);
    const auto cos = cos_in.contiguous(), sin = sin_in.contiguous();
    auto y = torch::empty(x.sizes(), x.options());
    const std::int64_t half = x.size(3) / 2;
    const float *xp = x.data_ptr<float>(), *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for_each_row(x, 64, [&](std::int64_t xo, std::int64_t to, std::int64_t yo) {
      const float *xi = xp + xo, *c = cp + to, *s = sp + to;
      float* yi = yp + yo;
      for (std::int64_t j = 0; j < half; ++j) yi[j] = xi[j] * c[j] - xi[j + half] * s[j];
      for (std::int64_t j = half; j < 2 * half; ++j) yi[j] = xi[j] * c[j] + xi[j - half] * s[j];
    });
    ctx->save_for_backward({cos, sin});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto g = grad_outputs[0].contiguous();
    const auto &cos = saved[0], &sin = saved[1];
    auto dx = torch::empty(g.sizes(), g.options());
    const std::int64_t half = g.size(3) / 2;
    const float *gp = g.data_ptr<float>(), *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
    float* dp = dx.data_ptr<float>();
    for_each_row(g, 64, [&](std::int64_t go, std::int64_t to, std::int64_t o) {
      const float *gi = gp + go, *c = cp + to, *s = sp + to;
      float* di = dp + o;
      for (std::int64_t i = 0; i < half; ++i) di[i] = gi[i] * c[i] + gi[i + half] * s[i + half];
      for (std::int64_t i = half; i < 2 * half; ++i) di[i] = gi[i] * c[i] - gi[i - half] * s[i - half];
    });
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool rotary_fusable(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const auto fp32_cpu = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat; };
  return fp32_cpu(x) && fp32_cpu(cos) && fp32_cpu(sin) && x.dim() == 4 && cos.dim() == 3 &&
         cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) && cos.size(1) == x.size(2) &&
         cos.size(2) == x.size(3) && x.size(3) % 2 == 0 && !cos.requires_grad() && !sin.requires_grad();
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return RotaryFunction::apply(x, cos, sin);
}

}  // namespace fused
}  // namespace nn
}  // namespace speculators
