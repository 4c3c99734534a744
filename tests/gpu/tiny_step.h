// One training step of a tiny decoder (the core verifier model with its head: embedding, two
// Llama layers, norm, lm_head) on a fixed packed batch of two documents: next-token cross
// entropy, backward. Shared by the precision tests (CPU) and the CUDA parity tests, which run the
// same step on different devices and precisions and compare.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "../core/tiny_config.h"
#include "speculators/autocast.h"
#include "speculators/verifier.h"

namespace speculators {
namespace testing {

// tiny_config() at twice its width, with a vocabulary of 96.
inline TransformerConfig tiny_step_config() {
  TransformerConfig c = tiny_config();
  c.vocab_size = 96;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.head_dim = 16;
  return c;
}

// The same weights (seeded), on the CPU in fp32.
inline VerifierModel tiny_step_model() {
  torch::manual_seed(7);
  VerifierModel m(tiny_step_config());
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.2);
  return m;
}

struct StepResult {
  double loss = 0;
  torch::Tensor logits;                 // CPU fp32
  std::vector<torch::Tensor> grads;     // CPU fp32, in parameter order
  std::vector<torch::ScalarType> param_dtypes, grad_dtypes;  // as they were on the device
};

// Runs forward (under bf16 autocast when `bf16`) and backward on `device`.
inline StepResult tiny_step(VerifierModel& model, torch::Device device, bool bf16) {
  model->to(device);
  model->zero_grad();
  const std::int64_t L = 48;
  torch::manual_seed(11);
  auto ids = torch::randint(0, 96, {1, L}, torch::kLong);
  auto pos = torch::cat({torch::arange(30, torch::kLong), torch::arange(L - 30, torch::kLong)}).view({1, L});
  auto docs = torch::cat({torch::zeros({30}, torch::kLong), torch::ones({L - 30}, torch::kLong)});
  ids = ids.to(device), pos = pos.to(device), docs = docs.to(device);
  torch::Tensor loss, logits;
  {
    AutocastGuard autocast(device, torch::kBFloat16, bf16);
    logits = model->forward(ids, pos, docs, {}, /*want_logits=*/true).logits;
    loss = torch::nn::functional::cross_entropy(logits[0].slice(0, 0, L - 1), ids[0].slice(0, 1, L));
  }
  loss.backward();
  StepResult r;
  r.loss = loss.to(torch::kCPU, torch::kDouble).item<double>();
  r.logits = logits.detach().to(torch::kCPU, torch::kFloat32);
  for (auto& p : model->parameters()) {
    r.param_dtypes.push_back(p.scalar_type());
    r.grad_dtypes.push_back(p.grad().defined() ? p.grad().scalar_type() : torch::kFloat32);
    r.grads.push_back(p.grad().defined() ? p.grad().to(torch::kCPU, torch::kFloat32) : torch::zeros_like(p.cpu()));
  }
  return r;
}

// max |a - b| / max |b| over all tensors (the repository's parity measure).
inline double relative_max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, (a[i] - b[i]).abs().max().item<double>());
    scale = std::max(scale, b[i].abs().max().item<double>());
  }
  return diff / std::max(scale, 1e-30);
}

}  // namespace testing
}  // namespace speculators
