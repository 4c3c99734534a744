// The MLP speculator's stages, forward (loss and metrics) and proposer (mlp_speculator.h).
#include <cmath>
#include <utility>

#include "mlp_speculator.h"
#include "speculators/batch.h"
#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/metric_pairs.h"
#include "speculators/nn/losses.h"
#include "speculators/nn/target_mask.h"
#include "speculators/verifier_head.h"

namespace speculators {
namespace mlp_speculator {

MlpStageImpl::MlpStageImpl(std::int64_t in_dim, std::int64_t inner_dim, std::int64_t vocab_size, double state_weight,
                           double emb_weight)
    : state_weight(state_weight), emb_weight(emb_weight) {
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(in_dim, inner_dim).bias(false)));
  emb = register_module("emb", torch::nn::Embedding(vocab_size, inner_dim));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({inner_dim})));
  head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(inner_dim, vocab_size).bias(false)));
  // IBM's initialisation: every weight ~ N(0, 1/fan_in), the embedding ~ N(0, 1/inner_dim).
  torch::NoGradGuard no_grad;
  proj->weight.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(in_dim)));
  emb->weight.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(inner_dim)));
  head->weight.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(inner_dim)));
}

torch::Tensor MlpStageImpl::forward(const torch::Tensor& state, const torch::Tensor& tokens) {
  return torch::gelu(norm(proj(state) * state_weight + emb(tokens) * emb_weight));
}

MlpSpeculator::MlpSpeculator(MlpConfig config) : config_(std::move(config)) {
  config_.validate("mlp_speculator config");
  const double a = std::pow(0.5, 0.5 / static_cast<double>(config_.n_predict));
  const double b = std::sqrt((1.0 - a * a) * static_cast<double>(config_.inner_dim) / 2.0);
  stages_ = register_module("stages", torch::nn::ModuleList());
  for (std::int64_t k = 0; k < config_.n_predict; ++k) {
    const std::int64_t in_dim = k == 0 ? config_.hidden_size : config_.inner_dim;
    stages_->push_back(MlpStage(in_dim, config_.inner_dim, config_.vocab_size, a, b));
  }
  verifier_norm_ = register_module("verifier_norm", nn::RMSNorm(config_.hidden_size, config_.rms_norm_eps));
  verifier_head_ = register_module(
      "verifier_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
  // Frozen until load_verifier fills them; NaN shows a forward that ran without them.
  torch::NoGradGuard no_grad;
  for (auto* w : {&verifier_norm_->weight, &verifier_head_->weight}) {
    w->fill_(std::nan(""));
    w->set_requires_grad(false);
  }
}

void MlpSpeculator::load_verifier(const std::string& dir) {
  const VerifierHead verifier = load_verifier_head(dir, config_.hidden_size, config_.vocab_size);
  copy_frozen(verifier_norm_->weight, verifier.norm);
  copy_frozen(verifier_head_->weight, verifier.lm_head);
}

void MlpSpeculator::after_load(const BuildContext& ctx) {
  if (!ctx.verifier_path.empty()) load_verifier(ctx.verifier_path);
}

OptimizerGroup MlpSpeculator::optimizer_group(const std::string& name, const torch::Tensor& param) const {
  if (name.find(".emb.") != std::string::npos || name.find(".head.") != std::string::npos) return OptimizerGroup::kAdamW;
  return reference_optimizer_group(name, param);
}

torch::Tensor MlpSpeculator::initial_state(const torch::Tensor& features) {
  return verifier_norm_(features.to(verifier_norm_->weight.scalar_type()));
}

std::vector<torch::Tensor> MlpSpeculator::stage_logits(const torch::Tensor& features, const torch::Tensor& input_ids) {
  const std::int64_t length = input_ids.size(0);
  torch::Tensor state = initial_state(features);
  std::vector<torch::Tensor> logits;
  for (std::int64_t k = 1; k <= config_.n_predict; ++k) {
    // tokens[i] = input_ids[i + k], 0 where i + k is past the row (those positions are never scored).
    auto tokens = torch::zeros_like(input_ids);
    if (k < length) tokens.slice(0, 0, length - k).copy_(input_ids.slice(0, k, length));
    state = stage(k - 1)->forward(state, tokens);
    logits.push_back(stage(k - 1)->head(state));
  }
  return logits;
}

torch::Tensor MlpSpeculator::verifier_logits(const torch::Tensor& last_hidden) {
  torch::NoGradGuard no_grad;
  return verifier_head_(initial_state(last_hidden));
}

ForwardResult MlpSpeculator::forward(const Batch& batch, const Json& /*call_args*/) {
  const std::string who = "mlp_speculator";
  const auto& input_ids = require_packed(batch, "input_ids", who);
  const std::int64_t length = input_ids.size(1);
  const auto& features = require_packed(batch, "hidden_states", who, length, config_.hidden_size);
  const auto& last = require_packed(batch, "verifier_last_hidden_states", who, length, config_.hidden_size);
  const auto& loss_mask = require_packed(batch, "loss_mask", who, length);
  const auto& document_ids = require_packed(batch, "document_ids", who, length);

  const std::vector<torch::Tensor> logits = stage_logits(features[0], input_ids[0]);
  const torch::Tensor targets = verifier_logits(last[0]);
  static const nn::LossSpec kKl = nn::parse_loss_fn("kl_div");
  MetricPairs metrics;
  ForwardResult result;
  result.loss = torch::zeros({}, targets.options().dtype(torch::kFloat32));
  for (std::int64_t k = 1; k <= config_.n_predict; ++k) {
    // Stage k at position i predicts token i + k + 1; its target is the verifier at i + k.
    const std::int64_t n = std::max<std::int64_t>(length - k - 1, 0);
    const auto mask = nn::shifted_target_mask(document_ids, loss_mask, k + 1);
    const auto predicted = logits[static_cast<std::size_t>(k - 1)].slice(0, 0, n);
    const auto target = targets.slice(0, k, k + n);
    if (n > 0) result.loss = result.loss + nn::masked_divergence(predicted, target, mask, kKl).loss;
    metrics.add_count("acc_" + std::to_string(k), predicted.detach().argmax(-1).eq(target.argmax(-1)), mask);
    result.output.push_back(logits[static_cast<std::size_t>(k - 1)].detach().argmax(-1).unsqueeze(0));
  }
  metrics.add_mean("loss", result.loss);
  result.metrics = metrics.take();
  return result;
}

std::unique_ptr<Proposer> MlpSpeculator::make_proposer() { return std::make_unique<MlpProposer>(*this); }

void MlpProposer::extend(const torch::Tensor& features, const torch::Tensor& /*last_hidden*/,
                         const torch::Tensor& next_tokens) {
  const std::int64_t n = next_tokens.numel();
  if (n == 0) return;
  const std::int64_t width = model_.config().hidden_size;
  if (features.dim() != 2 || features.size(0) != n || features.size(1) != width)
    fail_data(cat("mlp_speculator proposer: features must be [", n, ", ", width, "], got ", features.sizes()));
  feature_ = features[n - 1].detach();
  token_ = next_tokens.reshape({-1})[n - 1].item<std::int64_t>();
  length_ += n;
}

std::vector<std::int64_t> MlpProposer::propose(std::int64_t k) {
  if (length_ == 0) fail("mlp_speculator proposer: propose() before any extend()");
  torch::NoGradGuard no_grad;
  torch::Tensor state = model_.initial_state(feature_.unsqueeze(0));
  auto token = torch::tensor({token_}, torch::kLong).to(feature_.device());
  std::vector<std::int64_t> out;
  for (std::int64_t s = 0; s < std::min(k, model_.config().n_predict); ++s) {
    state = model_.stage(s)->forward(state, token);
    token = model_.stage(s)->head(state).argmax(-1);
    out.push_back(token.item<std::int64_t>());
  }
  return out;
}

}  // namespace mlp_speculator
}  // namespace speculators
