// See timing.h.
#include "timing.h"

#include <algorithm>
#include <chrono>

#include "device_support.h"
#include "speculators/error.h"

namespace speculators::bench {

using Clock = std::chrono::steady_clock;

double Spread::min() const {
  if (samples.empty()) fail("Spread: no samples");
  return *std::min_element(samples.begin(), samples.end());
}

double Spread::max() const {
  if (samples.empty()) fail("Spread: no samples");
  return *std::max_element(samples.begin(), samples.end());
}

std::size_t Spread::median_index() const {
  if (samples.empty()) fail("Spread: no samples");
  std::vector<std::size_t> order(samples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return samples[a] < samples[b]; });
  return order[(order.size() - 1) / 2];
}

double Spread::median() const { return samples[median_index()]; }

Json Spread::to_json() const {
  return Json::object({{"min", min()}, {"median", median()}, {"max", max()}, {"samples", Json(samples)}});
}

Spread matmul_rate(torch::Device device, torch::ScalarType dtype, std::int64_t n, int reps, double seconds_per_rep) {
  torch::NoGradGuard no_grad;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const auto a = torch::randn({n, n}, options);
  const auto b = torch::randn({n, n}, options);
  auto c = torch::mm(a, b);  // warm up, and size one product
  synchronize(device);
  auto t0 = Clock::now();
  c = torch::mm(a, b);
  synchronize(device);
  const double one = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto per_rep = std::max<std::int64_t>(1, static_cast<std::int64_t>(seconds_per_rep / std::max(one, 1e-6)));
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  Spread out;
  for (int r = 0; r < reps; ++r) {
    t0 = Clock::now();
    for (std::int64_t i = 0; i < per_rep; ++i) c = torch::mm(a, b);
    synchronize(device);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    out.samples.push_back(flops * static_cast<double>(per_rep) / s / 1e9);
  }
  return out;
}

}  // namespace speculators::bench
