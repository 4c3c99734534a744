// The _sum/_total metric accumulator (speculators/metric_pairs.h).
#include "speculators/metric_pairs.h"

#include <utility>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

void MetricPairs::accumulate(const std::string& key, const torch::Tensor& value) {
  if (!value.defined()) fail(cat("MetricPairs: \"", key, "\" got an undefined tensor"));
  if (value.numel() != 1) fail(cat("MetricPairs: \"", key, "\" must be one number, got a tensor of shape ", value.sizes()));
  torch::Tensor v = value.detach().to(torch::kFloat32).reshape({});
  auto it = metrics_.find(key);
  if (it == metrics_.end()) {
    metrics_.emplace(key, v.clone());
  } else {
    it->second = it->second + v.to(it->second.device());
  }
}

void MetricPairs::add(const std::string& name, const torch::Tensor& sum, const torch::Tensor& total) {
  accumulate(name + "_sum", sum);
  accumulate(name + "_total", total.defined() && sum.defined() ? total.to(sum.device()) : total);
}

void MetricPairs::add_mean(const std::string& name, const torch::Tensor& value) {
  if (!value.defined()) fail(cat("MetricPairs: \"", name, "\" got an undefined tensor"));
  add(name, value, torch::ones({}, torch::TensorOptions().dtype(torch::kFloat32).device(value.device())));
}

void MetricPairs::add_count(const std::string& name, const torch::Tensor& correct, const torch::Tensor& mask) {
  if (!correct.sizes().equals(mask.sizes()))
    fail(cat("MetricPairs: \"", name, "\": correct ", correct.sizes(), " and mask ", mask.sizes(), " differ in shape"));
  const auto m = mask.to(torch::kBool);
  add(name, (correct.to(torch::kBool) & m).sum(), m.sum());
}

void MetricPairs::add_all(const TensorMap& metrics) {
  for (const auto& [key, value] : metrics) accumulate(key, value);
}

TensorMap MetricPairs::take() {
  TensorMap out = std::move(metrics_);
  metrics_.clear();
  return out;
}

}  // namespace speculators
