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

// y = x·cos + rotate_half(x)·sin, or with kAdjoint its adjoint x·cos + rotate_halfᵀ(x·sin) (the
// gradient, x being the output's gradient); x is read through its strides, y is contiguous.
template <bool kAdjoint>
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto y = torch::empty(x.sizes(), x.options());
  const std::int64_t half = x.size(3) / 2;
  const float *xp = x.data_ptr<float>(), *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // The partner of j is j ± half: the forward scales it by sin at j, the adjoint by sin at the
  // partner and with the opposite sign.
  constexpr float sign = kAdjoint ? -1.0f : 1.0f;
  for_each_row(x, 64, [&](std::int64_t xo, std::int64_t to, std::int64_t yo) {
    const float *xi = xp + xo, *c = cp + to, *s = sp + to;
    float* yi = yp + yo;
    for (std::int64_t j = 0; j < half; ++j) yi[j] = xi[j] * c[j] - sign * xi[j + half] * s[kAdjoint ? j + half : j];
    for (std::int64_t j = half; j < 2 * half; ++j) yi[j] = xi[j] * c[j] + sign * xi[j - half] * s[kAdjoint ? j - half : j];
  });
  return y;
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos_in,
                               const torch::Tensor& sin_in) {
    const auto cos = cos_in.contiguous(), sin = sin_in.contiguous();
    ctx->save_for_backward({cos, sin});
    return rotate<false>(last_dim_contiguous(x), cos, sin);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    return {rotate<true>(last_dim_contiguous(grad_outputs[0]), saved[0], saved[1]), torch::Tensor(), torch::Tensor()};
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
