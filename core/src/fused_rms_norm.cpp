// See fused_rms_norm.h. y_j = w_j x_j r with r = (Σ x² / H + eps)^-1/2 per row; its gradient is
// dx_k = r (g_k w_k − x̂_k Σ_j g_j w_j x̂_j / H) with x̂ = x r, and dw_j = Σ_rows g_j x̂_j.
#include "fused_rms_norm.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace speculators {
namespace nn {
namespace fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RMSNormFunction : public torch::autograd::Function<RMSNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               double eps) {
    const auto xc = x.contiguous();
    const auto wc = weight.contiguous();
    const std::int64_t h = xc.size(-1), rows = h > 0 ? xc.numel() / h : 0;
    auto y = torch::empty_like(xc);
    auto inv_rms = torch::empty({rows}, xc.options());
    const float* xp = xc.data_ptr<float>();
    const float* wp = wc.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* rp = inv_rms.data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const float* xi = xp + i * h;
        float* yi = yp + i * h;
        double squares = 0.0;
        for (std::int64_t j = 0; j < h; ++j) squares += static_cast<double>(xi[j]) * xi[j];
        // As LlamaRMSNorm: rsqrt of the fp32 mean plus eps, x·r rounded to fp32, then the weight.
        const float mean = static_cast<float>(squares / static_cast<double>(h));
        const float r = 1.0f / std::sqrt(mean + static_cast<float>(eps));
        rp[i] = r;
        for (std::int64_t j = 0; j < h; ++j) yi[j] = wp[j] * (xi[j] * r);
      }
    });
    ctx->save_for_backward({xc, wc, inv_rms});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto& inv_rms = saved[2];
    const auto g = grad_outputs[0].contiguous();
    const std::int64_t h = x.size(-1), rows = inv_rms.size(0);
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* rp = inv_rms.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    torch::Tensor grad_x, grad_w;
    if (ctx->needs_input_grad(0)) {
      grad_x = torch::empty_like(x);
      float* dp = grad_x.data_ptr<float>();
      at::parallel_for(0, rows, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
          const float *xi = xp + i * h, *gi = gp + i * h;
          const float r = rp[i];
          double dot = 0.0;
          for (std::int64_t j = 0; j < h; ++j) dot += static_cast<double>(gi[j]) * wp[j] * (xi[j] * r);
          const float scale = static_cast<float>(dot / static_cast<double>(h));
          float* di = dp + i * h;
          for (std::int64_t j = 0; j < h; ++j) di[j] = r * (gi[j] * wp[j] - (xi[j] * r) * scale);
        }
      });
    }
    if (ctx->needs_input_grad(1)) {
      std::vector<double> sums(static_cast<std::size_t>(h), 0.0);
      for (std::int64_t i = 0; i < rows; ++i) {
        const float *xi = xp + i * h, *gi = gp + i * h;
        const float r = rp[i];
        for (std::int64_t j = 0; j < h; ++j) sums[static_cast<std::size_t>(j)] += static_cast<double>(gi[j]) * (xi[j] * r);
      }
      grad_w = torch::tensor(sums, torch::kDouble).to(torch::kFloat);
    }
    return {grad_x, grad_w, torch::Tensor()};
  }
};

}  // namespace

bool rms_norm_fusable(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.device().is_cpu() && weight.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         weight.scalar_type() == torch::kFloat && x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1) &&
         x.size(-1) > 0;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RMSNormFunction::apply(x, weight, eps);
}

}  // namespace fused
}  // namespace nn
}  // namespace speculators
